"""Where relative paths in a config point: ``$BLENDSERVE_HOME`` (``make run`` sets it to
the repository), else the working directory."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["resolve_store"]


def resolve_store(store: str) -> Path:
    """An absolute store path: relative ones resolve against ``$BLENDSERVE_HOME`` or cwd."""
    path = Path(store).expanduser()
    if path.is_absolute():
        return path
    return Path(os.environ.get("BLENDSERVE_HOME", os.getcwd())) / path
