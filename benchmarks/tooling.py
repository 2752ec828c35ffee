"""What the benchmark needs beyond the project's virtualenv, installed on first use.

* ``wrk``: Debian's package, installed with ``apt-get`` when it is missing.
* ``benchmarks/.venv``: a separate virtualenv with pinned MLServer, its
  scikit-learn runtime and py-spy (``requirements-mlserver.txt``), plus the
  project's own scikit-learn version so the click model's pickle loads as trained.
  It is rebuilt when the pins change.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

__all__ = ["BENCH_VENV", "ensure_bench_venv", "ensure_wrk", "tool_versions"]

HERE = Path(__file__).resolve().parent
BENCH_VENV = HERE / ".venv"
REQUIREMENTS = HERE / "requirements-mlserver.txt"


def _as_root(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return command
    if shutil.which("sudo"):
        return ["sudo", *command]
    raise RuntimeError(f"{' '.join(command)} needs root (or sudo)")


def ensure_wrk() -> str:
    """The path of ``wrk`` (and ``taskset``), installing Debian's packages if missing."""
    if shutil.which("wrk") is None:
        print("wrk is missing: installing it with apt-get...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(_as_root(["apt-get", "update", "-qq"]), check=True, env=env)
        packages = ["wrk"] + ([] if shutil.which("taskset") else ["util-linux"])
        subprocess.run(
            _as_root(["apt-get", "install", "-y", "-qq", *packages]), check=True, env=env
        )
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk is still missing after apt-get install wrk")
    return path


def _pins() -> list[str]:
    lines = REQUIREMENTS.read_text(encoding="utf-8").splitlines()
    pins = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return [*pins, f"scikit-learn=={metadata.version('scikit-learn')}"]


def ensure_bench_venv() -> Path:
    """``benchmarks/.venv`` with the pinned packages; (re)built when the pins change."""
    pins = _pins()
    stamp = BENCH_VENV / f".installed-{hashlib.sha256(' '.join(pins).encode()).hexdigest()[:12]}"
    if stamp.exists():
        return BENCH_VENV
    print(f"setting up {BENCH_VENV} ({', '.join(pins)})...", flush=True)
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        # The project's interpreter (3.11): MLServer 1.7 supports it.
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *pins],
        check=True,
    )
    for old in BENCH_VENV.glob(".installed-*"):
        old.unlink()
    stamp.touch()
    return BENCH_VENV


def tool_versions(venv: Path | None) -> dict[str, str]:
    """Versions of what was measured and what measured it."""
    versions = {
        "python": sys.version.split()[0],
        **{name: metadata.version(name) for name in ("ray", "fastapi", "torch", "scikit-learn")},
    }
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    versions["wrk"] = (wrk.stdout or wrk.stderr).split("[")[0].replace("wrk", "").strip()
    if venv is not None:
        probe = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import mlserver; print(mlserver.__version__)"],
            capture_output=True,
            text=True,
            check=False,
        )
        versions["mlserver"] = probe.stdout.strip() or "?"
    return versions
