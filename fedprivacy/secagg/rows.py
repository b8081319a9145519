"""Sparse per-row secure aggregation: each party sums only the rows it chose, masked per row.

For submodel learning a party contributes a block of ``width`` words for each row id it chose
(its randomized index set). The server must learn, for every row, the sum over the surviving parties
that chose it -- and nothing about a single party's row. Masks are therefore bound to the global row
id: the pairwise mask between u and v covers exactly the rows both chose, so it cancels row by row
whatever order each party keeps its rows in, and the self mask covers the party's own rows.

Keystream is random access per (key, row): AES-128 in ECB mode over the counter blocks
(row id as u64 big-endian || block index as u64 big-endian), the first ``width`` words of a row's
blocks read as little-endian words (masked to 61 bits mod p) -- equivalently, AES-CTR started at that
block. All rows a pair shares are expanded in one AES call.

The plan (who chose what) is public to the server; each party receives its own part: its rows and,
for every other party, the rows they share. Rows must be masked by *every* other chooser (the full
graph among a row's choosers), so a row plan requires a full-graph config (k = n - 1).

Trust: a party cannot check its plan (it does not know who else chose a row), so the plan is trusted
as in the curious-server model: a server that lies in a plan (e.g. tells a party it shares no row)
can expose that party's rows. Against such a server the plan would need to be certified by the
other parties; that is out of scope here.

What the server learns beyond the per-row sums: which parties chose which rows (the randomized sets,
already public to it), and for a row whose only surviving chooser is u (the others dropped after
choosing, or chose alone), u's block in the clear once u's self mask is removed -- the paper's
Theorem 5.5 event 1. The submodel layer zeroes rows with fewer than ``min_choosers`` choosers before
masking; dropouts can still reduce a row to one surviving chooser.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..encoding import ProtocolCode, Reader, Writer
from ..errors import DecodeError, InvalidParameters
from ..hazmat.field import P61, Modulus, add_inplace, dtype_of, sub_inplace, word_bytes
from .params import MAX_CLIENTS

__all__ = ["RowPlan", "ClientRowPlan", "row_keystream"]

_P61 = np.uint64(P61)
_PLAN_TYPE = 8
MAX_ROWS = 1 << 28
_BE = struct.Struct(">QQ")


def row_keystream(key: bytes, rows: np.ndarray, width: int, modulus: Modulus) -> np.ndarray:
    """Mask words for ``rows`` (uint64 row ids): an array of shape (len(rows), width)."""
    if rows.shape[0] == 0:
        return np.zeros((0, width), dtype=dtype_of(modulus))
    per_block = 16 // word_bytes(modulus)
    blocks_per_row = -(-width // per_block)
    counters = np.empty((rows.shape[0], blocks_per_row, 2), dtype=">u8")
    counters[:, :, 0] = rows[:, None]
    counters[:, :, 1] = np.arange(blocks_per_row, dtype=np.uint64)[None, :]
    stream = Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(counters.tobytes())
    words = np.frombuffer(stream, dtype=dtype_of(modulus).newbyteorder("<")).reshape(rows.shape[0], -1)[:, :width]
    words = words.astype(dtype_of(modulus))
    if modulus is Modulus.P61:
        np.bitwise_and(words, _P61, out=words)
    return words


def _combine_rows(target: np.ndarray, positions: np.ndarray, values: np.ndarray, modulus: Modulus, subtract: bool) -> None:
    """target[positions] +=/-= values (positions distinct), modulo ``modulus``."""
    block = target[positions]
    (sub_inplace if subtract else add_inplace)(block, values, modulus)
    target[positions] = block


def _sorted_rows(rows: object, name: str) -> np.ndarray:
    array = np.asarray(rows)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "ui"):
        raise InvalidParameters(f"{name} must be a vector of integer row ids")
    array = array.astype(np.uint64)
    if array.shape[0] > 1 and not bool(np.all(array[1:] > array[:-1])):
        raise InvalidParameters(f"{name} must be sorted and distinct")
    return array


@dataclass(frozen=True, eq=False)
class ClientRowPlan:
    """One party's part of the plan: its rows and the rows it shares with each other party."""

    party_id: int
    width: int
    rows: np.ndarray
    shared: Mapping[int, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.width, int) or not 1 <= self.width <= 1 << 16:
            raise InvalidParameters("width must be in [1, 65536]")
        rows = _sorted_rows(self.rows, "rows")
        object.__setattr__(self, "rows", rows)
        shared = {}
        for peer, common in sorted(self.shared.items()):
            common = _sorted_rows(common, "shared rows")
            where = np.searchsorted(rows, common)
            if common.size and (int(where.max()) >= rows.shape[0] or not np.array_equal(rows[where], common)):
                raise InvalidParameters(f"rows shared with party {peer} are not among this party's rows")
            shared[peer] = common
        object.__setattr__(self, "shared", shared)

    @property
    def input_length(self) -> int:
        return int(self.rows.shape[0]) * self.width

    def mask(self, vector: np.ndarray, self_key: bytes, pair_keys: Mapping[int, bytes], modulus: Modulus) -> None:
        """Add the self mask over all rows and +/- the pairwise mask over each shared row set, in place."""
        blocks = vector.reshape(-1, self.width)
        all_rows = np.arange(self.rows.shape[0])
        _combine_rows(blocks, all_rows, row_keystream(self_key, self.rows, self.width, modulus), modulus, False)
        for peer, key in pair_keys.items():
            common = self.shared.get(peer)
            if common is None or common.size == 0:
                continue
            positions = np.searchsorted(self.rows, common)
            stream = row_keystream(key, common, self.width, modulus)
            _combine_rows(blocks, positions, stream, modulus, subtract=self.party_id < peer)

    def encode(self) -> bytes:
        writer = Writer(ProtocolCode.SECAGG, _PLAN_TYPE).u32(self.party_id).u32(self.width)
        writer.u32(self.rows.shape[0]).fixed(self.rows.astype(">u8").tobytes(), 8 * self.rows.shape[0])
        writer.u32(len(self.shared))
        for peer, common in self.shared.items():
            positions = np.searchsorted(self.rows, common).astype(">u4")
            writer.u32(peer).u32(common.shape[0]).fixed(positions.tobytes(), 4 * common.shape[0])
        return writer.finish()

    @classmethod
    def decode(cls, data: bytes) -> ClientRowPlan:
        try:
            reader = Reader(data, ProtocolCode.SECAGG)
            if reader.u8() != _PLAN_TYPE:
                raise DecodeError("not a row plan")
            party, width = reader.u32(), reader.u32()
            count = reader.count(MAX_ROWS, 8)
            rows = np.frombuffer(reader.fixed(8 * count), dtype=">u8").astype(np.uint64)
            shared = {}
            last = 0
            for _ in range(reader.count(MAX_CLIENTS, 8)):
                peer = reader.u32()
                if peer <= last:
                    raise DecodeError("peers must be strictly increasing")
                last = peer
                size = reader.count(count, 4)
                positions = np.frombuffer(reader.fixed(4 * size), dtype=">u4").astype(np.int64)
                if size and (int(positions.max()) >= count or not bool(np.all(np.diff(positions) > 0))):
                    raise DecodeError("shared row positions out of order or range")
                shared[peer] = rows[positions]
            reader.done()
            return cls(party, width, rows, shared)
        except InvalidParameters as exc:
            raise DecodeError(f"invalid row plan: {exc}") from None


@dataclass(frozen=True, eq=False)
class RowPlan:
    """The whole plan (server side): the row universe and each party's chosen rows."""

    union: np.ndarray
    width: int
    chosen: Mapping[int, np.ndarray]
    _positions: dict[int, np.ndarray] = field(init=False, repr=False)
    _choosers: tuple[np.ndarray, np.ndarray] | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        union = _sorted_rows(self.union, "union")
        object.__setattr__(self, "union", union)
        if not isinstance(self.width, int) or not 1 <= self.width <= 1 << 16:
            raise InvalidParameters("width must be in [1, 65536]")
        chosen, positions = {}, {}
        for party, rows in sorted(self.chosen.items()):
            rows = _sorted_rows(rows, f"rows of party {party}")
            where = np.searchsorted(union, rows)
            if rows.size and (int(where.max()) >= union.shape[0] or not np.array_equal(union[where], rows)):
                raise InvalidParameters(f"party {party} chose rows outside the union")
            chosen[party], positions[party] = rows, where
        object.__setattr__(self, "chosen", chosen)
        object.__setattr__(self, "_positions", positions)

    @property
    def dim(self) -> int:
        """The server accumulator's length (every union row)."""
        return int(self.union.shape[0]) * self.width

    def positions(self, party: int) -> np.ndarray:
        return self._positions[party]

    def shared(self, a: int, b: int) -> np.ndarray:
        return np.intersect1d(self.chosen[a], self.chosen[b], assume_unique=True)

    def choosers(self) -> np.ndarray:
        """How many parties chose each union row."""
        counts = np.zeros(self.union.shape[0], dtype=np.int64)
        for where in self._positions.values():
            counts[where] += 1
        return counts

    def _chooser_index(self) -> tuple[np.ndarray, np.ndarray]:
        """CSR of the choosers of each union row: (offsets of length |union| + 1, parties)."""
        if self._choosers is None:
            parties = np.concatenate([np.full(w.shape[0], p, dtype=np.int64) for p, w in self._positions.items()] or [np.zeros(0, np.int64)])
            rows = np.concatenate(list(self._positions.values()) or [np.zeros(0, np.int64)])
            order = np.lexsort((parties, rows))
            offsets = np.zeros(self.union.shape[0] + 1, dtype=np.int64)
            np.cumsum(np.bincount(rows, minlength=self.union.shape[0]), out=offsets[1:])
            object.__setattr__(self, "_choosers", (offsets, parties[order]))
        assert self._choosers is not None
        return self._choosers

    def for_client(self, party: int) -> ClientRowPlan:
        """The party's rows and, per other party, the rows both chose (from the row -> choosers index)."""
        offsets, choosers = self._chooser_index()
        where = self._positions[party]
        starts, ends = offsets[where], offsets[where + 1]
        lengths = ends - starts
        flat = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
        peers = choosers[flat]
        rows = np.repeat(self.chosen[party], lengths)
        keep = peers != party
        peers, rows = peers[keep], rows[keep]
        order = np.argsort(peers, kind="stable")  # rows stay increasing within each peer
        peers, rows = peers[order], rows[order]
        cuts = np.flatnonzero(np.diff(peers)) + 1
        shared = {int(group[0]): chunk for group, chunk in zip(np.split(peers, cuts), np.split(rows, cuts)) if group.size}
        return ClientRowPlan(party, self.width, self.chosen[party], shared)

    def accumulate(self, total: np.ndarray, party: int, vector: np.ndarray, modulus: Modulus) -> None:
        _combine_rows(total.reshape(-1, self.width), self._positions[party], vector.reshape(-1, self.width), modulus, False)

    def remove_self_mask(self, total: np.ndarray, party: int, key: bytes, modulus: Modulus) -> None:
        stream = row_keystream(key, self.chosen[party], self.width, modulus)
        _combine_rows(total.reshape(-1, self.width), self._positions[party], stream, modulus, True)

    def remove_pair_mask(self, total: np.ndarray, survivor: int, dropped: int, key: bytes, modulus: Modulus) -> None:
        """Take out what ``survivor`` added for the pair (survivor, dropped) over their shared rows."""
        common = self.shared(survivor, dropped)
        if common.size == 0:
            return
        positions = np.searchsorted(self.union, common)
        stream = row_keystream(key, common, self.width, modulus)
        # survivor added +mask if survivor > dropped, -mask otherwise.
        _combine_rows(total.reshape(-1, self.width), positions, stream, modulus, subtract=survivor > dropped)
