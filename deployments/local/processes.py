"""Processes of a local cluster: stopping its Unix sessions (and nothing else), and
waiting for its HTTP readiness probe."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import httpx

__all__ = ["kill_sessions", "stop_sessions", "wait_ready"]


def stop_sessions(session_ids: list[int], grace_s: float) -> None:
    """SIGTERM every process of the sessions together, SIGKILL what is left after ``grace_s``."""
    if not session_ids:
        return
    _signal_sessions(session_ids, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while _session_pids(session_ids) and time.monotonic() < deadline:
        time.sleep(0.2)
    _signal_sessions(session_ids, signal.SIGKILL)


def kill_sessions(session_ids: list[int]) -> None:
    """SIGKILL every process of the sessions at once, as a crash of their machine would."""
    _signal_sessions(session_ids, signal.SIGKILL)


def _session_pids(session_ids: list[int]) -> list[int]:
    """Live (non-zombie) processes in any of the Unix sessions ``session_ids`` (Linux /proc)."""
    wanted = set(session_ids)
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command: state, ppid, pgrp, session, ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) in wanted and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def _signal_sessions(session_ids: list[int], signum: signal.Signals) -> None:
    for pid in _session_pids(session_ids):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def wait_ready(url: str, timeout_s: float = 300.0, interval_s: float = 0.5) -> dict[str, object]:
    """Poll ``url`` (a ``/readyz``) until it answers 200; return its body.

    Raises ``TimeoutError`` with the last answer when the deadline passes.
    """
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() < deadline:
            try:
                response = client.get(url)
                if response.status_code == 200:
                    body: dict[str, object] = response.json()
                    return body
                last = f"{response.status_code} {response.text[:500]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(interval_s)
    raise TimeoutError(f"{url} not ready after {timeout_s}s; last answer: {last}")
