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
from typing import Generic, TypeVar

import numpy as np

__all__ = ["PackedTable", "pack_bytes", "pack_byte_pairs", "pack_limb_pairs", "EMPTY"]

V = TypeVar("V")


class PackedTable(Mapping[int, V], Generic[V]):
    """party id -> record, over ``ids`` (increasing int64) and ``rows`` (one row of words per id)."""

    __slots__ = ("_ids", "_rows", "_unpack")

    def __init__(self, ids: np.ndarray, rows: np.ndarray, unpack: Callable[[np.ndarray], V]) -> None:
        self._ids = ids
        self._rows = rows
        self._unpack = unpack

    def _index(self, key: object) -> int:
        if type(key) is not int:  # noqa: E721 (the fast path below is for plain ints)
            if not isinstance(key, (int, np.integer)) or isinstance(key, bool):
                return -1
            key = int(key)
        ids = self._ids
        where = int(ids.searchsorted(key))
        return where if where < ids.shape[0] and ids[where] == key else -1

    def __getitem__(self, key: object) -> V:
        where = self._index(key)
        if where < 0:
            raise KeyError(key)
        return self._unpack(self._rows[where])

    def get(self, key: object, default: object = None) -> V | object:  # type: ignore[override]
        where = self._index(key)
        return default if where < 0 else self._unpack(self._rows[where])

    def __contains__(self, key: object) -> bool:
        return self._index(key) >= 0

    def items(self) -> Iterator[tuple[int, V]]:  # type: ignore[override]
        """(id, record) in increasing id order, without a lookup per id."""
        unpack = self._unpack
        return ((key, unpack(row)) for key, row in zip(self._ids.tolist(), self._rows))

    def __iter__(self) -> Iterator[int]:
        return iter(self._ids.tolist())

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def __repr__(self) -> str:  # never the secrets
        return f"PackedTable({len(self)} parties)"


def _table(items: Mapping[int, object], width: int, dtype: type, encode: Callable[[object], np.ndarray],
           unpack: Callable[[np.ndarray], V]) -> PackedTable[V]:
    ids = np.array(sorted(int(k) for k in items), dtype=np.int64)
    rows = np.empty((ids.shape[0], width), dtype=dtype)
    for row, key in enumerate(ids.tolist()):
        rows[row] = encode(items[key])
    return PackedTable(ids, rows, unpack)


def pack_bytes(items: Mapping[int, bytes], size: int) -> PackedTable[bytes]:
    """party id -> ``size`` bytes (pair-mask keys, channel secrets)."""
    return _table(items, size, np.uint8, lambda value: np.frombuffer(value, dtype=np.uint8), lambda row: row.tobytes())


def pack_byte_pairs(items: Mapping[int, tuple[bytes, bytes]], size: int) -> PackedTable[tuple[bytes, bytes]]:
    """party id -> two ``size``-byte strings (a peer's channel and mask public keys)."""
    return _table(items, 2 * size, np.uint8, lambda pair: np.frombuffer(pair[0] + pair[1], dtype=np.uint8),
                  lambda row: (row[:size].tobytes(), row[size:].tobytes()))


def pack_limb_pairs(items: Mapping[int, tuple[tuple[int, ...], tuple[int, ...]]],
                    limbs: int) -> PackedTable[tuple[tuple[int, ...], tuple[int, ...]]]:
    """party id -> two tuples of ``limbs`` field limbs (a held key share and seed share)."""
    return _table(items, 2 * limbs, np.uint64, lambda pair: np.array(pair[0] + pair[1], dtype=np.uint64),
                  lambda row: (tuple(row[:limbs].tolist()), tuple(row[limbs:].tolist())))


EMPTY: PackedTable[object] = PackedTable(np.zeros(0, dtype=np.int64), np.zeros((0, 1), dtype=np.uint8), bytes)
