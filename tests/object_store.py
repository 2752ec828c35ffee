"""An S3-compatible object store for tests: moto's standalone server (``moto[server]``,
a dev dependency), a real process speaking S3 over HTTP on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyarrow.fs as pafs
import pytest

from deployments.local.ports import free_port

__all__ = ["S3Server", "start_s3_server"]


@dataclass(frozen=True)
class S3Server:
    """An S3-compatible server on 127.0.0.1 with one bucket."""

    endpoint: str
    bucket: str

    def uri(self, prefix: str | None = None) -> str:
        """A pyarrow filesystem URI under the bucket (a fresh prefix when none given)."""
        prefix = prefix or uuid.uuid4().hex[:12]
        return (
            f"s3://{self.bucket}/{prefix}?endpoint_override={self.endpoint}"
            "&scheme=http&region=us-east-1"
        )


@contextmanager
def start_s3_server(bucket: str = "events") -> Iterator[S3Server]:
    """Start the server, create ``bucket``, and set the credentials pyarrow reads from
    the environment; stop it all at the end."""
    port = free_port()
    moto = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1.0)
                break
            except httpx.HTTPError:
                assert process.poll() is None, "moto_server exited"
                assert time.monotonic() < deadline, "moto_server did not answer in 30 s"
                time.sleep(0.1)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AWS_ACCESS_KEY_ID", "blendserve-test")
            patch.setenv("AWS_SECRET_ACCESS_KEY", "blendserve-test")
            server = S3Server(f"127.0.0.1:{port}", bucket)
            creating = server.uri("setup") + "&allow_bucket_creation=true"
            filesystem, _ = pafs.FileSystem.from_uri(creating)
            filesystem.create_dir(bucket)
            yield server
    finally:
        process.terminate()
        process.wait(timeout=10)
