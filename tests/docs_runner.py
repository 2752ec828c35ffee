"""Run a Markdown document's code the way a reader would: Python blocks as one
script, shell blocks with bash, files written where a ``<!-- file: PATH -->`` line
says, all in one working directory, in document order.

The README's "Your own data and models" section and docs/your-data.md are run with
this, so a command that drifts from the code fails a test instead of a reader.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_FENCE = re.compile(
    r"(?:<!-- file: (?P<file>\S+) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)```\n", re.DOTALL
)


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, its text, and the file it is (if it is one)."""

    lang: str
    body: str
    file: str | None


def section(path: Path, heading: str) -> str:
    """The text under ``heading`` (a ``## `` line) up to the next ``## `` heading."""
    text = path.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + len(heading) + 2)
    return text[start : end if end >= 0 else len(text)]


def blocks(markdown: str) -> list[Block]:
    """Every fenced block of ``markdown``, in order."""
    return [Block(m["lang"], m["body"], m["file"]) for m in _FENCE.finditer(markdown)]


def shell_env(home: Path) -> dict[str, str]:
    """The environment a reader's shell has after ``make run``'s install: the project's
    virtualenv first on PATH, nothing of this test run's own settings."""
    mine = ("BLENDSERVE_", "PYTEST", "MLFLOW_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(mine)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(home)
    return env


def _shell(script: str, workdir: Path) -> str:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=workdir,
        env=shell_env(workdir),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, (
        f"{script}\nexited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def run(markdown: str, workdir: Path, *, skip_shell: tuple[str, ...] = ()) -> list[str]:
    """Run every block of ``markdown`` in ``workdir``; the shell blocks' outputs, in order.

    Python blocks accumulate into one script (``docs_example.py``, as a reader pastes
    them into one file); before each shell block, the script so far runs in a fresh
    interpreter when it has grown. Shell lines starting with one of ``skip_shell`` are
    not run (commands that need a running service, which the caller exercises itself).
    """
    script = workdir / "docs_example.py"
    python: list[str] = []
    ran = 0
    outputs: list[str] = []

    def run_python() -> None:
        nonlocal ran
        if len(python) > ran:
            script.write_text("\n\n".join(python), encoding="utf-8")
            _shell(f"python {script.name}", workdir)
            ran = len(python)

    for block in blocks(markdown):
        if block.file is not None:
            target = workdir / block.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.body, encoding="utf-8")
        elif block.lang == "python":
            python.append(block.body)
        elif block.lang == "bash":
            # One command per logical line: a trailing backslash continues it.
            commands = block.body.replace("\\\n", " ").splitlines()
            lines = [c for c in commands if c.strip() and not c.lstrip().startswith(skip_shell)]
            if lines:
                run_python()
                outputs.append(_shell("\n".join(lines), workdir))
    run_python()
    return outputs
