"""Shared parsing of ``predict`` instances into what frameworks expect."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from models.errors import InputError

__all__ = ["to_feature_matrix", "to_user_ids"]


def to_feature_matrix(
    instances: Sequence[Any], n_features: int, feature_names: Sequence[str] | None
) -> np.ndarray:
    """Turn rows (lists of numbers, or dicts keyed by feature name) into a float matrix."""
    rows: list[list[float]] = []
    for index, instance in enumerate(instances):
        field = f"instances.{index}"
        if isinstance(instance, Mapping):
            if not feature_names:
                raise InputError(field, "this model takes lists of numbers, not objects")
            missing = [n for n in feature_names if n not in instance]
            unknown = [k for k in instance if k not in feature_names]
            if missing or unknown:
                raise InputError(
                    field,
                    f"expected keys {list(feature_names)}; missing {missing}, unknown {unknown}",
                )
            values = [instance[n] for n in feature_names]
        elif isinstance(instance, Sequence) and not isinstance(instance, str):
            values = list(instance)
        else:
            raise InputError(field, f"expected a list of {n_features} numbers or an object")
        if len(values) != n_features:
            raise InputError(field, f"expected {n_features} features, got {len(values)}")
        row: list[float] = []
        for position, value in enumerate(values):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                name = feature_names[position] if feature_names else str(position)
                raise InputError(f"{field}.{name}", f"expected a finite number, got {value!r}")
            row.append(float(value))
        rows.append(row)
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), n_features)


def to_user_ids(instances: Sequence[Any]) -> list[str]:
    """Accept user ids as strings, ``{"user_id": ...}`` objects or one-string rows (an
    Open Inference Protocol BYTES tensor of shape ``[N]`` or ``[N, 1]``)."""
    users: list[str] = []
    for index, instance in enumerate(instances):
        if isinstance(instance, Mapping):
            instance = instance.get("user_id")
        elif isinstance(instance, list | tuple) and len(instance) == 1:
            instance = instance[0]
        if not isinstance(instance, str) or not instance:
            raise InputError(f"instances.{index}", 'expected a user id string or {"user_id": str}')
        users.append(instance)
    return users
