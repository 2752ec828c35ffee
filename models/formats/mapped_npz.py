"""The arrays of an ``.npz`` file mapped from disk instead of read into memory.

``numpy.savez`` stores each array uncompressed in a zip archive: its bytes lie in the
file as they would in memory, after a zip header and a ``.npy`` header. Mapping them
read-only costs no copy, and every process that maps the same file shares one copy
in the page cache: two ingress replicas holding a million items' factors use the
memory of one (issue 20, item 4). ``numpy.load`` cannot map an ``.npz``
(``mmap_mode`` applies to ``.npy`` files only), hence this reader.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np

__all__ = ["map_npz"]

_LOCAL_HEADER = struct.Struct("<4s22xHH")
"""A zip local file header: its signature, then (after 22 bytes) the lengths of the
name and the extra field that precede the data."""
_LOCAL_SIGNATURE = b"PK\x03\x04"


def map_npz(path: Path) -> dict[str, np.ndarray]:
    """Each array of ``path`` by name, as a read-only memory map; an array the
    archive compressed (``numpy.savez_compressed``) or that holds Python objects is
    read into memory instead, as ``numpy.load`` would."""
    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive, path.open("rb") as raw:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            name = info.filename[: -len(".npy")]
            mapped = None
            if info.compress_type == zipfile.ZIP_STORED:
                mapped = _mapped_member(path, raw, info.header_offset)
            if mapped is None:
                with archive.open(info) as member:
                    mapped = np.lib.format.read_array(member, allow_pickle=False)
            arrays[name] = mapped
    return arrays


def _mapped_member(path: Path, raw: BinaryIO, header_offset: int) -> np.ndarray | None:
    """The stored ``.npy`` member at ``header_offset``, mapped; ``None`` if it holds
    Python objects (which have no fixed layout to map)."""
    raw.seek(header_offset)
    signature, name_length, extra_length = _LOCAL_HEADER.unpack(raw.read(_LOCAL_HEADER.size))
    if signature != _LOCAL_SIGNATURE:
        raise ValueError(f"{path}: no zip entry at offset {header_offset}")
    raw.seek(header_offset + _LOCAL_HEADER.size + name_length + extra_length)
    major, _ = np.lib.format.read_magic(raw)
    if major == 1:
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(raw)
    else:
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(raw)
    if dtype.hasobject:
        return None
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype=dtype)
    order: Literal["F", "C"] = "F" if fortran_order else "C"
    mapped = np.memmap(path, dtype=dtype, mode="r", offset=raw.tell(), shape=shape, order=order)
    return np.asarray(mapped)
