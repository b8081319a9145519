"""Per-peer records of a secure-aggregation client kept as numpy arrays instead of Python objects.

A full-graph client at n = 1,000 holds, per peer, two public keys, two Shamir shares (5 limbs each),
a pair-mask key and, briefly, a channel secret. As dicts of bytes and tuples of ints that is about a
kilobyte a peer (a megabyte a client, a gigabyte for a simulated round); as one id array and one row
of fixed-size words per peer it is the 64 + 80 + 16 + 32 bytes themselves. :class:`PackedTable` is a
read-only mapping party id -> record over such arrays, records decoded on access (the protocol reads
them one peer at a time, or all of them once, or a list of peers with one lookup:
:meth:`PackedTable.select`). Built from a mapping in one join, not row by row. Holds secrets: it is
the client's state, never sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import InvalidParameters

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

    def select(self, keys: Sequence[int] | np.ndarray, *, missing_ok: bool = False) -> list[Any]:
        """The records of ``keys`` (party ids), in their order, with one vectorised lookup (a client
        reads ~1,000 peers' records at a time). An id not in the table: ``KeyError``, or None in its
        place with ``missing_ok``."""
        ids = self._ids
        wanted = np.asarray(keys, dtype=np.int64).reshape(-1)
        if not ids.shape[0]:
            if wanted.shape[0] and not missing_ok:
                raise KeyError(int(wanted[0]))
            return [None] * wanted.shape[0]
        where = np.minimum(ids.searchsorted(wanted), ids.shape[0] - 1)
        found = ids[where] == wanted
        unpack, size, rows = _UNPACK[self._kind], self._size, self._rows
        if bool(found.all()):
            return [unpack(row, size) for row in rows[where]]
        if not missing_ok:
            raise KeyError(int(wanted[~found][0]))
        return [unpack(rows[at], size) if hit else None for at, hit in zip(where.tolist(), found.tolist())]

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


def _table(items: Mapping[int, Any], width: int, dtype: type, flat: Callable[[list[Any]], np.ndarray], kind: str,
           size: int) -> PackedTable:
    """``flat`` turns the records, in increasing id order, into one flat array of ``width`` words each."""
    ids = np.array(sorted(int(k) for k in items), dtype=np.int64)
    words = flat([items[key] for key in ids.tolist()])
    if words.shape[0] != ids.shape[0] * width:
        raise InvalidParameters(f"packed records must be {width} words each")
    return PackedTable(ids, np.ascontiguousarray(words.reshape(ids.shape[0], width), dtype=dtype), kind, size)


def _joined(values: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(values), dtype=np.uint8)


def pack_bytes(items: Mapping[int, bytes], size: int) -> PackedTable:
    """party id -> ``size`` bytes (pair-mask keys, channel secrets)."""
    def flat(values: list[bytes]) -> np.ndarray:
        if any(len(value) != size for value in values):
            raise InvalidParameters(f"packed values must be {size} bytes each")
        return _joined(values)
    return _table(items, size, np.uint8, flat, "bytes", size)


def pack_byte_pairs(items: Mapping[int, tuple[bytes, bytes]], size: int) -> PackedTable:
    """party id -> two ``size``-byte strings (a peer's channel and mask public keys)."""
    def flat(pairs: list[tuple[bytes, bytes]]) -> np.ndarray:
        if any(len(first) != size or len(second) != size for first, second in pairs):
            raise InvalidParameters(f"packed key pairs must be {size} bytes each")
        return _joined([part for pair in pairs for part in pair])
    return _table(items, 2 * size, np.uint8, flat, "byte-pair", size)


def pack_limb_pairs(items: Mapping[int, tuple[tuple[int, ...], tuple[int, ...]]], limbs: int) -> PackedTable:
    """party id -> two tuples of ``limbs`` field limbs (a held key share and seed share)."""
    def flat(pairs: list[tuple[tuple[int, ...], tuple[int, ...]]]) -> np.ndarray:
        if any(len(first) != limbs or len(second) != limbs for first, second in pairs):
            raise InvalidParameters(f"packed limb pairs must be {limbs} limbs each")
        return np.array([pair[0] + pair[1] for pair in pairs], dtype=np.uint64).reshape(-1)
    return _table(items, 2 * limbs, np.uint64, flat, "limb-pair", limbs)
