"""The ``blendserve`` command line: validate, up, publish, train, evaluate, report."""

from deployments.cli.main import main

__all__ = ["main"]
