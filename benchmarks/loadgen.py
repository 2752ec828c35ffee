"""The load generator: ``wrk`` with a Lua script for POST bodies, and its output parsed.

One wrk thread (``-t1``) pinned with ``taskset`` to one core, so on a small machine
the load generator takes at most that core and leaves the rest to the server. The
Lua script's ``done`` hook prints one ``WRK_JSON {...}`` line with exact counts and
latency percentiles in microseconds; :func:`parse_wrk_output` reads it, and falls
back to wrk's human-readable ``--latency`` report when the line is missing.

wrk is closed-loop: each connection sends its next request when the previous answer
arrives, so concurrency is the number of connections.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "WrkResult",
    "lua_script",
    "parse_wrk_output",
    "run_wrk",
    "wrk_command",
]

_MARKER = "WRK_JSON "

# Printed by `done` (wrk's summary counters and latency percentiles, in microseconds).
# wrk counts an HTTP status >= 400 as a `status` error.
_DONE_HOOK = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,'
    .. '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,'
    .. '"max_us":%d}\\n',
    "%MARKER%", summary.requests, summary.duration, summary.bytes, e.connect, e.read,
    e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max))
end
"""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: throughput, latency and errors."""

    requests: int
    """Completed requests (any status)."""
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    status_errors: int
    """Answers with an HTTP status >= 400."""
    socket_errors: int
    """Connect, read, write errors and timeouts."""

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def errors(self) -> int:
        """Non-2xx answers plus socket errors."""
        return self.status_errors + self.socket_errors

    def to_json(self) -> dict[str, Any]:
        """The fields plus the derived ``rps`` and ``errors``."""
        return {**asdict(self), "rps": self.rps, "errors": self.errors}


def lua_script(
    body: dict[str, Any] | None, method: str = "POST", headers: dict[str, str] | None = None
) -> str:
    """A wrk script that sends ``body`` as JSON with ``method`` and ``headers``, plus the
    ``done`` hook."""
    lines = [f'wrk.method = "{method}"']
    for name, value in (headers or {}).items():
        lines.append(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}")
    if body is not None:
        text = json.dumps(body, separators=(",", ":"))
        if "]==]" in text:
            raise ValueError("the JSON body must not contain ']==]' (Lua long-string end)")
        lines += [f"wrk.body = [==[{text}]==]", 'wrk.headers["Content-Type"] = "application/json"']
    return "\n".join(lines) + "\n" + _DONE_HOOK.replace("%MARKER%", _MARKER)


def wrk_command(
    url: str,
    script: Path,
    connections: int,
    duration_s: float,
    core: int | None,
    timeout_s: float = 5.0,
) -> list[str]:
    """The exact command line: one thread, ``connections`` connections, pinned to ``core``."""
    command = [
        shutil.which("wrk") or "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration_s:g}s",
        f"--timeout={timeout_s:g}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    if core is not None:
        command = ["taskset", "-c", str(core), *command]
    return command


def run_wrk(
    url: str,
    body: dict[str, Any] | None,
    connections: int,
    duration_s: float,
    core: int | None,
    headers: dict[str, str] | None = None,
) -> WrkResult:
    """Load ``url`` with ``body`` from ``connections`` connections for ``duration_s``."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as scratch:
        script = Path(scratch) / "post.lua"
        script.write_text(lua_script(body, headers=headers), encoding="utf-8")
        return parse_wrk_output(_wrk(wrk_command(url, script, connections, duration_s, core)))


def _wrk(command: list[str]) -> str:
    duration = next(float(a[2:-1]) for a in command if a.startswith("-d"))
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=False,
        env={**os.environ, "LC_ALL": "C"},
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def parse_wrk_output(text: str) -> WrkResult:
    """A :class:`WrkResult` from wrk's stdout: the ``WRK_JSON`` line, else the report."""
    for line in text.splitlines():
        if line.startswith(_MARKER):
            data = json.loads(line[len(_MARKER) :])
            return WrkResult(
                requests=int(data["requests"]),
                duration_s=data["duration_us"] / 1e6,
                p50_ms=data["p50_us"] / 1e3,
                p90_ms=data["p90_us"] / 1e3,
                p99_ms=data["p99_us"] / 1e3,
                mean_ms=data["mean_us"] / 1e3,
                max_ms=data["max_us"] / 1e3,
                status_errors=int(data["status"]),
                socket_errors=sum(int(data[k]) for k in ("connect", "read", "write", "timeout")),
            )
    return _parse_report(text)


_DURATION_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),", re.M)
_PERCENTILE = re.compile(r"^\s*(50|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
_LATENCY = re.compile(
    r"^\s*Latency\s+([\d.]+)(us|ms|s|m|h)\s+[\d.]+\w+\s+([\d.]+)(us|ms|s|m|h)", re.M
)
_SOCKET = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def _ms(value: str, unit: str) -> float:
    return float(value) * _DURATION_UNITS_MS[unit]


def _parse_report(text: str) -> WrkResult:
    """wrk's own ``--latency`` report (values rounded to two decimals, with units)."""
    total = _TOTAL.search(text)
    if total is None:
        raise ValueError(f"not wrk output (no 'N requests in T' line):\n{text[:500]}")
    percentiles = {m[1]: _ms(m[2], m[3]) for m in _PERCENTILE.finditer(text)}
    if not {"50", "99"} <= set(percentiles):
        raise ValueError("wrk output has no latency distribution: run wrk with --latency")
    latency = _LATENCY.search(text)
    socket = _SOCKET.search(text)
    non_2xx = _NON_2XX.search(text)
    return WrkResult(
        requests=int(total[1]),
        duration_s=_ms(total[2], total[3]) / 1e3,
        p50_ms=percentiles["50"],
        p90_ms=percentiles.get("90", float("nan")),
        p99_ms=percentiles["99"],
        mean_ms=_ms(latency[1], latency[2]) if latency else float("nan"),
        max_ms=_ms(latency[3], latency[4]) if latency else float("nan"),
        status_errors=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=sum(int(n) for n in socket.groups()) if socket else 0,
    )
