"""Per-peer records of a secure-aggregation client kept as numpy arrays instead of Python objects.

A full-graph client at n = 1,000 holds, per peer, two public keys, two Shamir shares (5 limbs each),
a pair-mask key and, briefly, a channel secret. As dicts of bytes and tuples of ints that is about a
kilobyte a peer (a megabyte a client, a gigabyte for a simulated round); as one id array and one row
of fixed-size words per peer it is the 64 + 80 + 16 + 32 bytes themselves. :class:`PackedTable` is a
read-only mapping party id -> record over such arrays, records decoded on access (the protocol reads
them one peer at a time, or all of them once). Holds secrets: it is the client's state, never sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

__all__ = ["PackedTable", "pack_bytes", "pack_byte_pairs", "pack_limb_pairs"]


def _as_bytes(row: np.ndarray, size: int) -> bytes:
    return row.tobytes()


def _as_byte_pair(row: np.ndarray, size: int) -> tuple[bytes, bytes]:
    return row[:size].tobytes(), row[size:].tobytes()


def _as_limb_pair(row: np.ndarray, size: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return tuple(row[:size].tolist()), tuple(row[size:].tolist())


_UNPACK: dict[str, Callable[[np.ndarray, int], Any]] = {"bytes": _as_bytes, "byte-pair": _as_byte_pair,
                                                        "limb-pair": _as_limb_pair}


class PackedTable(Mapping[int, Any]):
    """party id -> record, over ``ids`` (increasing int64) and ``rows`` (one row of words per id);
    ``kind`` names how a row reads back (hosts keep clients between messages as snapshots, never pickled)."""

    __slots__ = ("_ids", "_rows", "_kind", "_size")

    def __init__(self, ids: np.ndarray, rows: np.ndarray, kind: str, size: int) -> None:
        self._ids = ids
        self._rows = rows
        self._kind = kind
        self._size = size

    def __getstate__(self) -> tuple[np.ndarray, np.ndarray, str, int]:
        return self._ids, self._rows, self._kind, self._size

    def __setstate__(self, state: tuple[np.ndarray, np.ndarray, str, int]) -> None:
        self._ids, self._rows, self._kind, self._size = state

    @property
    def ids(self) -> np.ndarray:
        """The party ids, increasing (a read-only view)."""
        view = self._ids.view()
        view.setflags(write=False)
        return view

    def _unpack(self, row: np.ndarray) -> Any:
        return _UNPACK[self._kind](row, self._size)

    def _index(self, key: object) -> int:
        if type(key) is not int:
            if not isinstance(key, (int, np.integer)) or isinstance(key, bool):
                return -1
            key = int(key)
        ids = self._ids
        where = int(ids.searchsorted(key))
        return where if where < ids.shape[0] and ids[where] == key else -1

    def __getitem__(self, key: object) -> Any:
        where = self._index(key)
        if where < 0:
            raise KeyError(key)
        return self._unpack(self._rows[where])

    def get(self, key: object, default: object = None) -> Any:
        where = self._index(key)
        return default if where < 0 else self._unpack(self._rows[where])

    def __contains__(self, key: object) -> bool:
        return self._index(key) >= 0

    def items(self) -> Iterator[tuple[int, Any]]:  # type: ignore[override]
        """(id, record) in increasing id order, without a lookup per id."""
        return ((key, self._unpack(row)) for key, row in zip(self._ids.tolist(), self._rows))

    def __iter__(self) -> Iterator[int]:
        return iter(self._ids.tolist())

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def __repr__(self) -> str:  # never the secrets
        return f"PackedTable({len(self)} parties)"


def _table(items: Mapping[int, Any], width: int, dtype: type, encode: Callable[[Any], np.ndarray], kind: str,
           size: int) -> PackedTable:
    ids = np.array(sorted(int(k) for k in items), dtype=np.int64)
    rows: np.ndarray = np.empty((ids.shape[0], width), dtype=dtype)
    for row, key in enumerate(ids.tolist()):
        rows[row] = encode(items[key])
    return PackedTable(ids, rows, kind, size)


def pack_bytes(items: Mapping[int, bytes], size: int) -> PackedTable:
    """party id -> ``size`` bytes (pair-mask keys, channel secrets)."""
    return _table(items, size, np.uint8, lambda value: np.frombuffer(value, dtype=np.uint8), "bytes", size)


def pack_byte_pairs(items: Mapping[int, tuple[bytes, bytes]], size: int) -> PackedTable:
    """party id -> two ``size``-byte strings (a peer's channel and mask public keys)."""
    return _table(items, 2 * size, np.uint8, lambda pair: np.frombuffer(pair[0] + pair[1], dtype=np.uint8),
                  "byte-pair", size)


def pack_limb_pairs(items: Mapping[int, tuple[tuple[int, ...], tuple[int, ...]]], limbs: int) -> PackedTable:
    """party id -> two tuples of ``limbs`` field limbs (a held key share and seed share)."""
    return _table(items, 2 * limbs, np.uint64, lambda pair: np.array(pair[0] + pair[1], dtype=np.uint64),
                  "limb-pair", limbs)
