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


def free_port_block(size: int, low: int = 20_000, high: int = 30_000) -> int:
    """The first port of ``size`` consecutive ports below the ephemeral range that
    nothing listens on now, on any address; tried at random, so clusters rarely race."""
    rng = random.SystemRandom()
    for _ in range(200):
        base = rng.randrange(low, high - size)
        if all(port_is_free(port) for port in range(base, base + size)):
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
