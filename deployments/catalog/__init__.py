"""The live catalogue: the item model and its validation (``items``), the SQLite
storage backend with its change feed (``store``), and the ingress's client that
keeps a ``LiveCatalog`` in step (``client``).
"""
