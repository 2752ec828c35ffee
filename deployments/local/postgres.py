"""A PostgreSQL server of this machine's own, from Debian's ``postgresql`` package: for
the live catalogue's PostgreSQL backend on a laptop (``make postgres``) and in tests.

It listens on 127.0.0.1 only, trusts local connections (no password: nothing but this
machine reaches it) and keeps its data in one directory. PostgreSQL refuses to run as
root, so under root the server runs as Debian's ``postgres`` user and the data
directory is handed to it. Production runs a managed or replicated PostgreSQL instead;
blendserve only needs its URL (``live_catalog.url``).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from deployments.local.ports import free_port

__all__ = ["LocalPostgres", "postgres_bin_dir"]

DATABASE = "blendserve"
USER = "blendserve"


def postgres_bin_dir() -> Path:
    """Where ``initdb`` and ``pg_ctl`` live: ``$BLENDSERVE_PG_BIN``, else the newest of
    Debian's ``/usr/lib/postgresql/<major>/bin``."""
    if override := os.environ.get("BLENDSERVE_PG_BIN"):
        return Path(override)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if not found:
        raise FileNotFoundError(
            "PostgreSQL's server is not installed: `make services` installs Debian's "
            "`postgresql` (or set BLENDSERVE_PG_BIN to its bin directory)"
        )
    return Path(found[-1])


@dataclass
class LocalPostgres:
    """One PostgreSQL server on 127.0.0.1:``port`` with its data in ``data_dir``."""

    data_dir: Path
    port: int = 0

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        if not self.port:
            self.port = free_port()

    @property
    def url(self) -> str:
        """The connection URL of its ``blendserve`` database."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def log_path(self) -> Path:
        """The server's own log (beside, not inside, the data directory)."""
        return self.data_dir.with_name(self.data_dir.name + ".log")

    def start(self, timeout_s: float = 60.0) -> str:
        """Create the data directory on first use, start the server and wait until it
        accepts connections; return :attr:`url`."""
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._pg_ctl(
            "start",
            "--wait",
            f"--timeout={int(timeout_s)}",
            "--log",
            str(self.log_path),
            # The socket goes in the data directory: Debian's /run/postgresql may be
            # missing or another server's.
            "-o",
            f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1",
        )
        self._create_database()
        return self.url

    def stop(self) -> None:
        """Stop the server (fast shutdown: sessions end, committed data stays)."""
        if (self.data_dir / "postmaster.pid").exists():
            self._pg_ctl("stop", "--wait", "-m", "fast", check=False)

    def pid(self) -> int | None:
        """The server's main process, when it runs."""
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)  # PostgreSQL refuses a data directory others can read
        self.log_path.touch()
        if _as_root():
            for path in (self.data_dir, self.log_path):
                shutil.chown(path, "postgres", "postgres")
        self._run(
            str(postgres_bin_dir() / "initdb"),
            "--pgdata",
            str(self.data_dir),
            "--username",
            USER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-instructions",
        )

    def _create_database(self) -> None:
        import psycopg  # deferred: only the PostgreSQL backend needs it

        with psycopg.connect(
            f"postgresql://{USER}@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if exists.fetchone() is None:
                conn.execute(f"CREATE DATABASE {DATABASE}")

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        self._run(str(postgres_bin_dir() / "pg_ctl"), "--pgdata", str(self.data_dir), *args,
                  check=check)  # fmt: skip

    def _run(self, *command: str, check: bool = True) -> None:
        if _as_root():
            command = ("runuser", "-u", "postgres", "--", *command)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            log = self.log_path.read_text()[-2000:] if self.log_path.exists() else ""
            raise RuntimeError(
                f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n"
                f"{result.stderr}\n{log}"
            )


def _as_root() -> bool:
    return os.geteuid() == 0


def main(argv: list[str] | None = None) -> int:
    """``python -m deployments.local.postgres start|stop --data DIR [--port N]``
    (``make postgres``): start one in the background and print its URL, or stop it."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m deployments.local.postgres")
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--data", type=Path, required=True, help="the data directory")
    parser.add_argument("--port", type=int, default=54329, help="on 127.0.0.1")
    args = parser.parse_args(argv)
    server = LocalPostgres(args.data, args.port)
    if args.action == "stop":
        server.stop()
        print(f"stopped the PostgreSQL server of {server.data_dir}")
        return 0
    url = server.start()
    print(f"PostgreSQL is running (log: {server.log_path}). Point the live catalogue at it:")
    print(f"  live_catalog: {{url: {url}}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
