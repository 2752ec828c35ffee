"""Run `blendserve up` as a user does, in a subprocess, and stop it as Ctrl-C would."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["start_up", "stop_up", "wait_for_line"]


def wait_for_line(
    log: Path, needle: str, process: subprocess.Popen[bytes], timeout_s: float
) -> None:
    """Wait until ``needle`` is in ``log``; fail at once if the process exited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if needle in log.read_text(errors="replace"):
            return
        assert process.poll() is None, f"blendserve up exited early:\n{log.read_text()}"
        time.sleep(0.5)
    raise AssertionError(f"{needle!r} not printed within {timeout_s}s:\n{log.read_text()}")


def start_up(
    config_path: Path, home: Path, log: Path, dashboard_port: int
) -> subprocess.Popen[bytes]:
    """``blendserve up CONFIG`` from ``home``, its output in ``log``; returns once ready."""
    command = [sys.executable, "-m", "deployments.cli.main", "up", str(config_path)]
    command += ["--dashboard-port", str(dashboard_port), "--num-cpus", "2"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=home)
    wait_for_line(log, "is ready at", process, timeout_s=300)
    return process


def stop_up(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as Ctrl-C: ``blendserve up`` stops the Ray cluster it started."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # a SIGKILL would leave its Ray cluster running
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
