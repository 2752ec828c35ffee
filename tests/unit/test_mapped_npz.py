"""Arrays of an ``.npz`` mapped from the file: the same values ``numpy.load`` reads,
without a private copy (what lets two replicas share a large model's factors)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.formats.factors import read_factors, save_factors
from models.formats.mapped_npz import map_npz


def _is_mapped(array: np.ndarray) -> bool:
    base = array
    while base is not None and not isinstance(base, np.memmap):
        base = base.base  # type: ignore[assignment]
    return isinstance(base, np.memmap)


def test_stored_arrays_are_mapped_with_the_values_numpy_reads(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "floats": rng.random((300, 16), dtype=np.float32),
        "ints": np.arange(11, dtype=np.int64),
        "fortran": np.asfortranarray(rng.random((5, 3))),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }
    np.savez(tmp_path / "a.npz", **arrays)  # type: ignore[arg-type]
    mapped = map_npz(tmp_path / "a.npz")
    assert set(mapped) == set(arrays)
    for name, array in arrays.items():
        assert mapped[name].dtype == array.dtype and np.array_equal(mapped[name], array)
    assert _is_mapped(mapped["floats"]) and _is_mapped(mapped["fortran"])
    assert not mapped["floats"].flags.writeable  # a stray write cannot reach the file


def test_compressed_or_object_arrays_are_read_as_numpy_reads_them(tmp_path: Path) -> None:
    floats = np.linspace(0, 1, 50, dtype=np.float32)
    np.savez_compressed(tmp_path / "c.npz", floats=floats)
    assert np.array_equal(map_npz(tmp_path / "c.npz")["floats"], floats)
    np.savez(tmp_path / "o.npz", objects=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        map_npz(tmp_path / "o.npz")


def test_factors_with_their_cold_row_are_served_from_the_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    users, items = rng.random((40, 8)), rng.random((90, 8))
    save_factors(str(tmp_path / "factors.npz"), users, items, None)
    (tmp_path / "ids.json").write_text(json.dumps({"users": list(range(40)), "items": []}))
    vectors = read_factors(tmp_path, 40, 90, "mf")
    assert _is_mapped(vectors.users) and _is_mapped(vectors.items)
    assert np.allclose(vectors.users[:40], users) and np.allclose(vectors.items, items)
    assert np.allclose(vectors.users[40], users.mean(axis=0))  # the cold-start row

    # A file without the cold row (an external export) still loads, with a copy.
    save_factors(str(tmp_path / "factors.npz"), users, items, None, cold_row=False)
    vectors = read_factors(tmp_path, 40, 90, "mf")
    assert vectors.users.shape == (41, 8) and not _is_mapped(vectors.users)
    assert np.allclose(vectors.users[40], users.mean(axis=0), atol=1e-6)
