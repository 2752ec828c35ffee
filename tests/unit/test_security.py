"""API keys and rate limits: who may call, with which scope, how often."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from deployments.api.keys import (
    KeyRing,
    Principal,
    RateLimiter,
    add_key,
    hash_key,
    write_dev_keys,
)
from models.errors import ConfigError


def _doc(*entries: dict[str, object]) -> str:
    return yaml.safe_dump({"keys": list(entries)})


def test_a_hashed_key_authenticates_and_carries_its_scopes() -> None:
    ring = KeyRing(
        _doc({"name": "shop", "sha256": hash_key("s3cret-key-0123456"), "scopes": ["infer"]})
    )
    principal = ring.authenticate("s3cret-key-0123456")
    assert principal is not None and principal.name == "shop"
    assert principal.scopes == frozenset({"infer"})
    assert ring.authenticate("s3cret-key-0123457") is None
    assert ring.authenticate("") is None


def test_plain_keys_are_accepted_for_development() -> None:
    ring = KeyRing(_doc({"name": "dev", "key": "a-development-key", "scopes": ["infer", "admin"]}))
    principal = ring.authenticate("a-development-key")
    assert principal is not None and principal.scopes == {"infer", "admin"}


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"name": "x", "scopes": ["infer"]}, "exactly one of"),
        ({"name": "x", "key": "k" * 20, "sha256": "0" * 64, "scopes": ["infer"]}, "exactly one"),
        ({"name": "x", "key": "k" * 20, "scopes": ["root"]}, "scopes"),
        ({"name": "x", "key": "short", "scopes": ["infer"]}, "key"),
        ({"name": "x", "sha256": "not-hex", "scopes": ["infer"]}, "sha256"),
        ({"name": "x", "key": "k" * 20, "scopes": ["infer"], "role": "boss"}, "role"),
    ],
)
def test_a_bad_keys_document_is_refused_naming_the_problem(
    entry: dict[str, object], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        KeyRing(_doc(entry))


def test_duplicate_names_are_refused() -> None:
    entry = {"name": "x", "key": "k" * 20, "scopes": ["infer"]}
    with pytest.raises(ConfigError, match="duplicate key names"):
        KeyRing(_doc(entry, {**entry, "key": "j" * 20}))


def test_keys_file_changes_are_picked_up_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(_doc({"name": "old", "key": "old-key-0123456789", "scopes": ["infer"]}))
    ring = KeyRing(path=path, recheck_s=0.0)
    assert ring.authenticate("old-key-0123456789") is not None
    path.write_text(_doc({"name": "new", "key": "new-key-0123456789abc", "scopes": ["infer"]}))
    os.utime(path, ns=(time.time_ns() + 10**9,) * 2)  # a new mtime even on coarse clocks
    assert ring.authenticate("old-key-0123456789") is None, "a rotated-out key still works"
    assert ring.authenticate("new-key-0123456789abc") is not None


def test_a_half_written_file_keeps_the_last_good_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(_doc({"name": "a", "key": "a-key-0123456789abc", "scopes": ["infer"]}))
    ring = KeyRing(path=path, recheck_s=0.0)
    path.write_text("keys: [{name: a, key: ")
    os.utime(path, ns=(time.time_ns() + 10**9,) * 2)
    assert ring.authenticate("a-key-0123456789abc") is not None


def test_a_missing_keys_file_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        KeyRing(path=tmp_path / "nope.yaml")


def test_from_env_reads_both_sources(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(_doc({"name": "file", "key": "file-key-0123456789", "scopes": ["admin"]}))
    inline = _doc({"name": "env", "key": "env-key-0123456789", "scopes": ["infer"]})
    ring = KeyRing.from_env({"BLENDSERVE_API_KEYS": inline, "BLENDSERVE_API_KEYS_FILE": str(path)})
    assert len(ring) == 2
    assert ring.authenticate("file-key-0123456789") is not None
    assert ring.authenticate("env-key-0123456789") is not None
    assert len(KeyRing.from_env({})) == 0


def test_rate_limit_allows_a_burst_then_says_how_long_to_wait() -> None:
    limiter = RateLimiter(requests_per_s=10, burst=3)
    caller = Principal("shop", frozenset({"infer"}))
    assert [limiter.acquire(caller, now=100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.acquire(caller, now=100.0)
    assert wait == pytest.approx(0.1)
    assert limiter.acquire(caller, now=100.11) == 0.0, "a token comes back after 1/rate s"
    assert limiter.acquire(Principal("other", frozenset()), now=100.11) == 0.0, "per key"


def test_a_keys_own_rate_overrides_the_default() -> None:
    limiter = RateLimiter(requests_per_s=1000, burst=1000)
    slow = Principal("batch", frozenset({"infer"}), requests_per_s=1, burst=1)
    assert limiter.acquire(slow, now=0.0) == 0.0
    assert limiter.acquire(slow, now=0.0) == pytest.approx(1.0)


def test_add_key_stores_only_a_digest_and_refuses_a_taken_name(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    key = add_key(path, "shop", ["infer"], requests_per_s=50)
    text = path.read_text()
    assert key not in text and hash_key(key) in text
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    second = add_key(path, "ops", ["infer", "admin"])
    ring = KeyRing(path=path)
    assert ring.authenticate(key) == Principal("shop", frozenset({"infer"}), 50.0, None)
    assert ring.authenticate(second) is not None
    with pytest.raises(ConfigError, match="exists"):
        add_key(path, "shop", ["admin"])


def test_dev_keys_are_created_once_owner_only(tmp_path: Path) -> None:
    key_path, keys_path = write_dev_keys(tmp_path / ".blendserve")
    key = key_path.read_text().strip()
    assert oct(key_path.stat().st_mode & 0o777) == "0o600"
    assert oct(keys_path.stat().st_mode & 0o777) == "0o600"
    assert write_dev_keys(tmp_path / ".blendserve") == (key_path, keys_path)
    assert key_path.read_text().strip() == key, "a second run replaced the key"
    principal = KeyRing(path=keys_path).authenticate(key)
    assert principal is not None and principal.scopes == {"infer", "admin"}


def test_the_keys_command_prints_the_key_once_and_stores_its_digest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from deployments.cli.main import main

    path = tmp_path / "keys.yaml"
    assert main(["keys", "add", "shop", "--scope", "infer", "--file", str(path)]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("bsk_") and key not in path.read_text()
    principal = KeyRing(path=path).authenticate(key)
    assert principal is not None and principal.scopes == {"infer"}
    assert main(["keys", "add", "shop", "--scope", "admin", "--file", str(path)]) == 2
    assert "exists" in capsys.readouterr().err
