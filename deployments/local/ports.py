"""Free TCP ports on this machine, for local clusters and tests that bind them."""

from __future__ import annotations

import random
import socket

__all__ = ["free_port", "free_port_block", "port_is_free"]


def free_port() -> int:
    """A TCP port that nothing listens on right now, below the ephemeral range.

    Not ``bind(0)``: that hands out an ephemeral port, which the kernel may give
    to any of Ray's many outgoing connections or gRPC servers before the caller
    binds it (CI lost a run to HAProxy finding its port taken that way).
    """
    return free_port_block(1, low=30_000, high=32_700)


_HANDED_OUT: set[int] = set()
"""Ports this process has handed out: one cluster asks for a dozen before any is
bound, and two of them must never be the same free port (a cluster's HAProxy once
found its metrics port taken by another of its own listeners)."""


def free_port_block(size: int, low: int = 20_000, high: int = 30_000) -> int:
    """The first port of ``size`` consecutive ports below the ephemeral range that
    nothing listens on now, on any address, and that this process has not handed out
    before; tried at random, so clusters rarely race."""
    rng = random.SystemRandom()
    if len(_HANDED_OUT) > 4_000:
        _HANDED_OUT.clear()  # long ago enough: those clusters have bound or gone
    for _ in range(200):
        base = rng.randrange(low, high - size)
        block = range(base, base + size)
        if not _HANDED_OUT.intersection(block) and all(port_is_free(p) for p in block):
            _HANDED_OUT.update(block)
            return base
    raise RuntimeError(f"no {size} free consecutive ports between {low} and {high}")


def port_is_free(port: int) -> bool:
    """True when nothing on this machine listens on TCP ``port``, on any address."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Connections of a stopped server linger in TIME_WAIT on its port for a minute;
        # they do not stop a new listener (servers set SO_REUSEADDR), nor should they
        # make the port look taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True
