"""The Python and JavaScript clients against the real service: their own live test
suites (skipped on their own without a service) run here with the cluster's URL
and development key."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from serving_cluster import ROOT, Deployed

pytestmark = pytest.mark.integration


def _env(deployed: Deployed) -> dict[str, str]:
    key = deployed.cluster.auth_headers()["Authorization"].removeprefix("Bearer ")
    return {**os.environ, "BLENDSERVE_URL": deployed.url, "BLENDSERVE_API_KEY": key}


def test_the_python_client_live_suite_passes(deployed: Deployed) -> None:
    live = ROOT / "clients" / "python" / "tests" / "test_live.py"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(live)]
    done = subprocess.run(
        command, env=_env(deployed), capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped" not in done.stdout, done.stdout
    assert " passed" in done.stdout


def test_the_javascript_client_suite_passes_against_the_service(deployed: Deployed) -> None:
    node = shutil.which("node")
    assert node, "Node 18+ is needed (make test installs Debian's nodejs)"
    tests = sorted(str(p) for p in (ROOT / "clients" / "js" / "test").glob("*.test.js"))
    done = subprocess.run(
        [node, "--test", *tests], env=_env(deployed), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# skipped 0" in done.stdout, done.stdout[-2000:]
