"""Wiring of models and blends to Ray Serve and HTTP, one room per responsibility:
``serve`` (the Serve deployments and the app builder), ``api`` (the HTTP surface),
``hosting`` (models in process or by handle, and their version rollouts), ``events``,
``catalog``, ``offline`` (no Ray), ``config``, ``cli`` and ``local``. ARCHITECTURE.md
draws the one-way layers that ``lint-imports`` enforces.

Importing this package imports nothing from Ray; the Serve modules are loaded by
``deployments.app:build_app`` when an application is built.
"""
