"""Bulk work on the Ray cluster, off the request path: ``scoring.py`` computes every
user's top items with Ray Data for the ``precomputed`` model format."""
