"""A real small filesystem for disk-full tests: a tmpfs mounted for the test (needs
root, which CI and ``make test`` have, or password-less sudo)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["fill", "grow", "mounted_tmpfs"]

SUDO = [] if os.geteuid() == 0 else ["sudo", "-n"]


@contextmanager
def mounted_tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``1m``, ``4m``) at ``mount`` until the block ends."""
    mount.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [*SUDO, "mount", "-t", "tmpfs", "-o", f"size={size},mode=1777", "tmpfs", str(mount)],
        check=True,
    )
    try:
        yield mount
    finally:
        subprocess.run([*SUDO, "umount", "-l", str(mount)], check=False)


def grow(mount: Path, size: str) -> None:
    """Give the filesystem more room, as an operator freeing space would."""
    subprocess.run([*SUDO, "mount", "-o", f"remount,size={size}", str(mount)], check=True)


def fill(mount: Path) -> Path:
    """Fill the filesystem with a ballast file, as another program would; returns it."""
    ballast = mount / "ballast"
    chunk = b"\0" * 65536
    with ballast.open("ab", buffering=0) as handle:
        try:
            while True:
                handle.write(chunk)
        except OSError:
            pass
    # Whatever is left is smaller than a chunk: take it byte by byte.
    with ballast.open("ab", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 512)
        except OSError:
            pass
    return ballast
