"""Result ids: a signed token per served item, so feedback can be attributed later.

A result id carries everything an outcome is credited to: request, use case,
position, item, experiment arms, interleaving team and model versions, plus the
serving time. It is self-contained (no lookup needed, any replica can read it) and
signed with HMAC-SHA256, so a forged or mangled id is refused instead of skewing an
experiment. No user id goes in: result ids end up in URLs and logs. A list served in
an experiment carries its user's *unit* instead: one of 4,096 buckets of the
user's pseudonym, the same for every list of that user (experiment statistics
cluster on it: one user's lists are correlated), and shared by many users.

Format: ``base64url(compact JSON) "." base64url(first 12 bytes of the HMAC)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

import msgspec

from models.errors import InputError

__all__ = ["UNITS", "ResultIdCodec", "ResultRef", "user_unit"]

UNITS = 4096
"""Buckets users are hashed into for experiment statistics (``user_unit``)."""
_TAG_BYTES = 12
_VERSION = 1
_encode_sorted = msgspec.json.Encoder(order="sorted").encode
"""Compact JSON with sorted keys (any encoding verifies: the signed bytes travel)."""


@dataclass(frozen=True)
class ResultRef:
    """What one served item was, recovered from its result id."""

    request_id: str
    use_case: str
    position: int
    """1-based position in the returned list."""
    item_id: str
    served_at: int
    """Unix seconds when the list was served."""
    variant: dict[str, str] = field(default_factory=dict)
    """Experiment node -> arm the request's user was in."""
    team: str | None = None
    """The interleaving team credited with the item, if any."""
    model_versions: dict[str, str] = field(default_factory=dict)
    """Model -> version of every model that contributed to this item."""
    unit: int | None = None
    """The user's unit (``user_unit``) for lists served in an experiment."""


def user_unit(pseudonym: str) -> int | None:
    """The unit of a user by their pseudonym (hex, already salted): one of ``UNITS``;
    None without a pseudonym (no event log)."""
    return int(pseudonym[:8], 16) % UNITS if pseudonym else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ResultIdCodec:
    """Encodes and verifies result ids with one secret key (shared by all replicas)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a result id key needs at least 16 bytes")
        self._key = key
        # The keyed state is set up once; each tag copies it (an id per returned item).
        self._mac = hmac.new(key, digestmod=hashlib.sha256)

    def _tag(self, payload: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(payload)
        return mac.digest()[:_TAG_BYTES]

    def encode(self, ref: ResultRef) -> str:
        """The signed id of ``ref``."""
        data: dict[str, Any] = {
            "v": _VERSION,
            "r": ref.request_id,
            "u": ref.use_case,
            "p": ref.position,
            "i": ref.item_id,
            "s": ref.served_at,
        }
        if ref.variant:
            data["x"] = ref.variant
        if ref.team is not None:
            data["t"] = ref.team
        if ref.model_versions:
            data["m"] = ref.model_versions
        if ref.unit is not None:
            data["n"] = ref.unit
        payload = _encode_sorted(data)
        return f"{_b64(payload)}.{_b64(self._tag(payload))}"

    def decode(self, result_id: str, field_name: str = "result_id") -> ResultRef:
        """Verify and read an id; ``InputError`` naming ``field_name`` when it is not ours."""
        body, dot, tag = result_id.partition(".")
        try:
            payload, signature = _unb64(body), _unb64(tag)
        except (binascii.Error, ValueError):
            raise InputError(field_name, "is not a result id (bad encoding)") from None
        if not dot or not hmac.compare_digest(signature, self._tag(payload)):
            raise InputError(field_name, "is not a result id this service issued")
        data = json.loads(payload)
        if data.get("v") != _VERSION:
            raise InputError(field_name, f"has unsupported version {data.get('v')!r}")
        return ResultRef(
            request_id=data["r"],
            use_case=data["u"],
            position=data["p"],
            item_id=data["i"],
            served_at=data["s"],
            variant=data.get("x", {}),
            team=data.get("t"),
            model_versions=data.get("m", {}),
            unit=data.get("n"),
        )
