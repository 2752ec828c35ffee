"""The ``import_path`` Serve configs name: ``deployments.app:build_app``.

Kept so configs in the wild keep working; the builder lives in
:mod:`deployments.serve.app`.
"""

from deployments.serve.app import build_app

__all__ = ["build_app"]
