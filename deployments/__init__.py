"""Wiring of models and blends to Ray Serve and HTTP (the only package importing Ray).

Importing this package imports nothing from Ray; the Serve modules are loaded by
``deployments.app:build_app`` when an application is built.
"""
