"""Where relative paths in a config point: ``$BLENDSERVE_HOME`` (``make run`` sets it to
the repository), else the working directory."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["LOCAL_SECRETS", "local_secret", "resolve_store"]

LOCAL_SECRETS = ".blendserve"
"""Where ``blendserve up`` keeps the secrets it made, under ``$BLENDSERVE_HOME``."""


def resolve_store(store: str) -> Path:
    """An absolute store path: relative ones resolve against ``$BLENDSERVE_HOME`` or cwd."""
    path = Path(store).expanduser()
    if path.is_absolute():
        return path
    return Path(os.environ.get("BLENDSERVE_HOME", os.getcwd())) / path


def local_secret(name: str, home: Path | None = None) -> Path:
    """Where ``blendserve up`` keeps secret ``name``: ``<home>/.blendserve/<name>``
    (``home``: ``$BLENDSERVE_HOME``, else the working directory)."""
    return (home if home is not None else resolve_store(".")) / LOCAL_SECRETS / name
