"""Typed reads of JSON answers: each helper checks one value's type and names where
it sat (``items.3.score``) when it is not what the API documents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = ["MalformedAnswer", "Reader"]


class MalformedAnswer(ValueError):
    """An answer that does not have the documented shape (a client/server mismatch)."""


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


class Reader:
    """A JSON object and where it sits in the answer.

    >>> Reader({"k": 3}).integer("k")
    3
    """

    __slots__ = ("data", "where")

    def __init__(self, data: Any, where: str = "body") -> None:
        if not isinstance(data, dict):
            raise MalformedAnswer(f"{where}: expected an object, got {_type_name(data)}")
        self.data: dict[str, Any] = data
        self.where = where

    def _path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where != "body" else key

    def _wrong(self, key: str, expected: str) -> MalformedAnswer:
        value = self.data.get(key)
        return MalformedAnswer(f"{self._path(key)}: expected {expected}, got {_type_name(value)}")

    def has(self, key: str) -> bool:
        """Whether ``key`` is present and not null."""
        return self.data.get(key) is not None

    def text(self, key: str) -> str:
        """A required string."""
        value = self.data.get(key)
        if not isinstance(value, str):
            raise self._wrong(key, "a string")
        return value

    def opt_text(self, key: str) -> str | None:
        """A string, or None when absent or null."""
        return self.text(key) if self.has(key) else None

    def number(self, key: str) -> float:
        """A required number (an integer is accepted)."""
        value = self.data.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._wrong(key, "a number")
        return float(value)

    def opt_number(self, key: str) -> float | None:
        """A number, or None when absent or null."""
        return self.number(key) if self.has(key) else None

    def integer(self, key: str, default: int | None = None) -> int:
        """A required integer (or ``default`` when absent or null and one is given)."""
        value = self.data.get(key)
        if value is None and default is not None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong(key, "an integer")
        return value

    def opt_integer(self, key: str) -> int | None:
        """An integer, or None when absent or null."""
        return self.integer(key) if self.has(key) else None

    def flag(self, key: str, default: bool | None = None) -> bool:
        """A boolean (or ``default`` when absent and one is given)."""
        value = self.data.get(key)
        if value is None and default is not None:
            return default
        if not isinstance(value, bool):
            raise self._wrong(key, "a boolean")
        return value

    def array(self, key: str, default_empty: bool = False) -> list[Any]:
        """A list (empty when absent or null, if ``default_empty``)."""
        value = self.data.get(key)
        if value is None and default_empty:
            return []
        if not isinstance(value, list):
            raise self._wrong(key, "a list")
        return value

    def objects(self, key: str, default_empty: bool = False) -> list[Reader]:
        """A list of objects, each as a reader that knows its index."""
        path = self._path(key)
        return [
            Reader(entry, f"{path}.{index}")
            for index, entry in enumerate(self.array(key, default_empty))
        ]

    def child(self, key: str) -> Reader:
        """A required nested object."""
        return Reader(self.data.get(key), self._path(key))

    def mapping(self, key: str, default_empty: bool = False) -> dict[str, Any]:
        """An object as a plain dict (empty when absent or null, if ``default_empty``)."""
        value = self.data.get(key)
        if value is None and default_empty:
            return {}
        if not isinstance(value, dict):
            raise self._wrong(key, "an object")
        return value

    def str_map(self, key: str, default_empty: bool = False) -> dict[str, str]:
        """An object whose values are strings."""
        found = self.mapping(key, default_empty)
        if not all(isinstance(v, str) for v in found.values()):
            raise self._wrong(key, "an object of strings")
        return dict(found)

    def int_map(self, key: str, default_empty: bool = False) -> dict[str, int]:
        """An object whose values are integers."""
        found = self.mapping(key, default_empty)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in found.values()):
            raise self._wrong(key, "an object of integers")
        return dict(found)

    def opt_datetime(self, key: str) -> datetime | None:
        """An ISO 8601 time (``Z`` accepted on Python 3.10 too), or None."""
        text = self.opt_text(key)
        if text is None:
            return None
        try:
            return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            raise self._wrong(key, "an ISO 8601 time") from None
