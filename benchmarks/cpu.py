"""Server CPU time from ``/proc``: utime + stime of every process of a Unix session.

Each system under test is started in a Unix session of its own (``ray start`` for a
local Ray, whose daemons, replicas and HAProxy all inherit it; ``mlserver start``
for MLServer and its workers), so "the server" is exactly the processes of that
session. A snapshot before and after a load run gives the CPU seconds the server
spent on it. A process that exits during the run loses its time (its parent only
collects it when it reaps it); none is expected to while load runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcessCpu", "Snapshot", "cpu_delta", "parse_stat", "snapshot", "top_processes"]

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcessCpu:
    """One process's CPU time so far and what it is."""

    pid: int
    start_ticks: int
    """Start time since boot (clock ticks): with the pid, identifies the process."""
    cpu_s: float
    """utime + stime, in seconds."""
    name: str


Snapshot = dict[tuple[int, int], ProcessCpu]
"""A session's processes keyed by (pid, start time), so a reused pid is a new process."""


def parse_stat(text: str) -> tuple[int, float, int, str]:
    """``(session id, utime + stime in seconds, start time in ticks, state)`` of a
    ``/proc/<pid>/stat`` line."""
    # The command is parenthesised and may itself contain spaces or parentheses.
    fields = text.rsplit(")", 1)[1].split()
    # After the command: state(0) ppid pgrp session(3) ... utime(11) stime(12) ...
    # starttime(19).
    state, session = fields[0], int(fields[3])
    cpu_s = (int(fields[11]) + int(fields[12])) / _TICKS_PER_S
    return session, cpu_s, int(fields[19]), state


def _name(pid_dir: Path) -> str:
    try:
        raw = (pid_dir / "cmdline").read_bytes()
    except OSError:
        return "?"
    # Ray sets process titles such as "ray::ServeReplica:blendserve:Ingress".
    parts = [p for p in raw.decode(errors="replace").split("\0") if p]
    if not parts:
        return "?"
    if parts[0].startswith("ray::"):
        return parts[0].split()[0]
    program = Path(parts[0]).name
    if program.startswith("python"):
        # The script (or -c for a multiprocessing child) says more than the interpreter.
        return " ".join([program, *(Path(p).name for p in parts[1:3])])
    return program


def snapshot(*session_ids: int) -> Snapshot:
    """CPU time of every live process in the Unix sessions ``session_ids``."""
    taken: Snapshot = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            session, cpu_s, start, state = parse_stat((entry / "stat").read_text())
        except (OSError, IndexError, ValueError):
            continue
        if session not in session_ids or state == "Z":
            continue
        pid = int(entry.name)
        taken[(pid, start)] = ProcessCpu(pid, start, cpu_s, _name(entry))
    return taken


def cpu_delta(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds each process spent between two snapshots, by ``name [pid]``.

    A process absent ``before`` was started in between and counts from zero.
    """
    spent: dict[str, float] = {}
    for key, process in after.items():
        earlier = before.get(key)
        delta = process.cpu_s - (earlier.cpu_s if earlier else 0.0)
        spent[f"{process.name} [{process.pid}]"] = max(delta, 0.0)
    return spent


def top_processes(spent: dict[str, float], n: int = 6) -> dict[str, float]:
    """The ``n`` processes that used the most CPU, plus ``other`` for the rest."""
    ranked = sorted(spent.items(), key=lambda kv: -kv[1])
    top = dict(ranked[:n])
    rest = sum(v for _, v in ranked[n:])
    if rest > 0:
        top["other"] = rest
    return top
