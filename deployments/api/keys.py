"""API keys with scopes, and a per-key rate limit: who may call what, how often.

Keys are read from ``$BLENDSERVE_API_KEYS_FILE`` (a YAML or JSON secrets file,
re-read when it changes, so keys rotate without a restart) and/or
``$BLENDSERVE_API_KEYS`` (the same document inline, e.g. from a Kubernetes
secret). A file should hold SHA-256 digests of the keys (``sha256:``), not the keys
themselves (``key:`` is accepted for development)::

    keys:
      - name: storefront            # who; shown in logs, never the key
        sha256: 3f2a...             # sha256 of the key, hex
        scopes: [infer]             # infer: recommend, predict, feedback
      - name: ops                   # admin: catalogue, models, experiments
        sha256: 9b1c...
        scopes: [infer, admin]
        requests_per_s: 50          # optional; else the ingress's rate_limit
        burst: 100

A presented key is hashed and compared with every entry by
``hmac.compare_digest``, so the time taken says nothing about how close a guess
was. Plain Python: no Ray, no HTTP.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from deployments.json_types import JsonObject
from models.errors import ConfigError

__all__ = [
    "API_KEYS_ENV",
    "API_KEYS_FILE_ENV",
    "SCOPES",
    "ApiKeyEntry",
    "KeyRing",
    "Principal",
    "RateLimiter",
    "Scope",
    "add_key",
    "generate_key",
    "hash_key",
    "write_dev_keys",
    "write_secret",
]

API_KEYS_ENV = "BLENDSERVE_API_KEYS"
"""Environment variable holding a keys document (YAML or JSON) inline."""

API_KEYS_FILE_ENV = "BLENDSERVE_API_KEYS_FILE"
"""Environment variable naming the keys file."""

Scope = Literal["infer", "admin"]
SCOPES: tuple[Scope, ...] = ("infer", "admin")


def hash_key(key: str) -> str:
    """The hex SHA-256 digest a keys file stores for ``key``."""
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    """A new random API key (256 bits, URL-safe)."""
    return "bsk_" + secrets.token_urlsafe(32)


class ApiKeyEntry(BaseModel):
    """One key of the keys file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="Key digest, hex.")
    key: str | None = Field(None, min_length=16, description="The key itself (development).")
    scopes: tuple[Scope, ...] = Field(min_length=1)
    requests_per_s: float | None = Field(None, gt=0, le=1_000_000)
    burst: int | None = Field(None, ge=1, le=10_000_000)

    @model_validator(mode="after")
    def _one_secret(self) -> ApiKeyEntry:
        if (self.sha256 is None) == (self.key is None):
            raise ValueError(f"key {self.name!r}: give exactly one of `sha256` or `key`")
        return self

    def digest(self) -> bytes:
        """The key's SHA-256 digest."""
        return (
            bytes.fromhex(self.sha256)
            if self.sha256
            else hashlib.sha256((self.key or "").encode()).digest()
        )


class _KeysDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[ApiKeyEntry] = Field(default_factory=list)


@dataclass(frozen=True)
class Principal:
    """The caller a valid key identifies."""

    name: str
    scopes: frozenset[str]
    requests_per_s: float | None = None
    burst: int | None = None


def _parse_keys(text: str, where: str) -> list[ApiKeyEntry]:
    try:
        data = yaml.safe_load(text) or {}
        entries = _KeysDocument.model_validate(data).keys
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{where}: invalid API keys document: {exc}") from exc
    names = [entry.name for entry in entries]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise ConfigError(f"{where}: duplicate key names {duplicated}")
    return entries


class KeyRing:
    """The valid keys; re-reads its file (at most every ``recheck_s``) when it changes."""

    def __init__(
        self,
        inline: str | None = None,
        path: Path | None = None,
        recheck_s: float = 5.0,
    ) -> None:
        self._inline = _parse_keys(inline, f"${API_KEYS_ENV}") if inline else []
        self._path = path
        self._recheck_s = recheck_s
        self._file_entries: list[ApiKeyEntry] = []
        self._file_stamp: tuple[int, int] | None = None
        self._checked_at = -math.inf
        self._entries: list[tuple[bytes, Principal]] = []
        self._refresh(force=True)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> KeyRing:
        """The keys named by ``$BLENDSERVE_API_KEYS`` and ``$BLENDSERVE_API_KEYS_FILE``."""
        path = environ.get(API_KEYS_FILE_ENV)
        return cls(environ.get(API_KEYS_ENV), Path(path) if path else None)

    def __len__(self) -> int:
        self._refresh()
        return len(self._entries)

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked_at < self._recheck_s:
            return
        self._checked_at = now
        if self._path is not None:
            try:
                stat = self._path.stat()
                stamp = (stat.st_mtime_ns, stat.st_size)
                if stamp == self._file_stamp and not force:
                    return
                text = self._path.read_text(encoding="utf-8")
                self._file_entries = _parse_keys(text, str(self._path))
                self._file_stamp = stamp
            except FileNotFoundError:
                if force:
                    raise ConfigError(f"{self._path}: API keys file not found") from None
                # Deleted after start: revoke its keys rather than keep stale ones.
                self._file_entries, self._file_stamp = [], None
            except ConfigError:
                if force:
                    raise
                return  # a half-written file during rotation: keep the last good keys
        elif not force:
            return  # inline keys only: nothing can change
        self._entries = [
            (
                entry.digest(),
                Principal(entry.name, frozenset(entry.scopes), entry.requests_per_s, entry.burst),
            )
            for entry in [*self._inline, *self._file_entries]
        ]

    def authenticate(self, presented: str) -> Principal | None:
        """The principal whose key is ``presented``, or ``None``; constant time per key."""
        self._refresh()
        digest = hashlib.sha256(presented.encode()).digest()
        found: Principal | None = None
        for stored, principal in self._entries:
            # No early exit: every entry is compared whatever matched.
            if hmac.compare_digest(stored, digest):
                found = principal
        return found


class RateLimiter:
    """Token buckets per caller: ``requests_per_s`` sustained, ``burst`` at once.

    Counts in this process only; with N ingress replicas a caller can get up to N
    times the rate (the load balancer spreads its requests).
    """

    def __init__(self, requests_per_s: float, burst: int) -> None:
        self.requests_per_s = requests_per_s
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def acquire(self, principal: Principal, now: float | None = None) -> float:
        """Take one token: 0.0 when allowed, else the seconds until one is free."""
        rate = principal.requests_per_s or self.requests_per_s
        burst = float(principal.burst or self.burst)
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(principal.name, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens >= 1.0:
            self._buckets[principal.name] = (tokens - 1.0, now)
            return 0.0
        self._buckets[principal.name] = (tokens, now)
        return (1.0 - tokens) / rate


def add_key(
    path: Path,
    name: str,
    scopes: list[Scope],
    requests_per_s: float | None = None,
    burst: int | None = None,
) -> str:
    """Create a key called ``name``, store its digest in the keys file ``path`` (created
    owner-only if missing) and return the key: the only time it is ever shown.

    Refuses a name already in the file; running replicas pick the key up within seconds.
    """
    existing = _parse_keys(path.read_text(encoding="utf-8"), str(path)) if path.is_file() else []
    if any(entry.name == name for entry in existing):
        raise ConfigError(f"{path}: a key named {name!r} exists; pick another name")
    key = generate_key()
    entry = ApiKeyEntry(
        name=name,
        sha256=hash_key(key),
        scopes=tuple(scopes),
        requests_per_s=requests_per_s,
        burst=burst,
    )
    document = {"keys": [e.model_dump(exclude_none=True) for e in [*existing, entry]]}
    temporary = path.with_name(path.name + ".tmp")
    write_secret(temporary, yaml.safe_dump(document, sort_keys=False))
    temporary.replace(path)  # atomic: a replica never reads half a file
    return key


def write_dev_keys(directory: Path) -> tuple[Path, Path]:
    """Create (once) a development key with every scope: the key in ``api_key`` and its
    digest in ``api_keys.yaml`` (the file the service reads), both owner-only.

    Returns the paths of the key and of the keys file.
    """
    directory.mkdir(parents=True, exist_ok=True)
    key_path, keys_path = directory / "api_key", directory / "api_keys.yaml"
    created = not key_path.is_file()
    if created:
        write_secret(key_path, generate_key() + "\n")
    if created or not keys_path.is_file():
        key = key_path.read_text(encoding="utf-8").strip()
        document: JsonObject = {
            "keys": [{"name": "dev", "sha256": hash_key(key), "scopes": list(SCOPES)}]
        }
        write_secret(keys_path, json.dumps(document, indent=2) + "\n")
    return key_path, keys_path


def write_secret(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by its owner only."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
