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

Cost: masking is one AES call per pair over the rows it shares (the counter blocks sit in a reused
buffer where only the row ids change between calls; the keystream goes into another), and a
gather / add / scatter of those rows into a padded mask accumulator that is added to the input once
at the end (for p the operations reduce as they go; the result is the same residue as adding the
masks one by one). A party's plan is not stored per peer: the rows it shares with each peer are
found peer by peer from the server's plan when it masks (a simulation holds every party's plan, so
per-peer arrays would cost parties x choosers x rows memory).

The plan (who chose what) is public to the server; each party receives its own part: its rows and,
for every other party, the rows they share. On the full graph (k = n - 1) a row is masked by *every*
other chooser; on a sparse SecAgg+ graph (``RowPlan(..., ring=, neighbours=)``) by the chooser's graph
neighbours that chose it, and by nobody else -- the row's mask graph is the graph induced on its
choosers (``rowgraph.py`` bounds its connectivity; protocols/submodel/spec.md, "Sparse rows").

Trust in the plan, and what the server learns beyond the per-row sums: ``protocols/secagg/spec.md``
§12 (what a party checks of its plan: §13).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..encoding import ProtocolCode, Reader, Writer
from ..errors import DecodeError, InvalidParameters
from ..gapcode import read_fields, read_set, rice_parameter, write_set
from ..hazmat.field import P61, Modulus, add_inplace, dtype_of, sub_inplace, word_bytes
from ..hazmat.prf import OUTPUT_SLACK, aes_blocks_into, as_buffer
from .packed import PackedTable
from .params import MAX_CLIENTS

__all__ = ["RowPlan", "ClientRowPlan", "row_keystream", "rows_in_use", "sparse_row_peel"]

_P61 = np.uint64(P61)
_PLAN_TYPE = 8  # per peer, the positions of the rows both chose
_PLAN_BITMAP_TYPE = 10  # per row, a bitmap over the parties that chose it (whichever form is shorter)
_PLAN_COMPACT_TYPE = 18  # per row, Rice-coded chooser indices into the sum's parties (the RowDownload's form)
MAX_ROWS = 1 << 28
_POPCOUNT = np.array([i.bit_count() for i in range(256)], dtype=np.int64)
_BATCH_ROWS = 4096  # rows of keystream a batch of small pair masks expands at once (reused buffers)
# Relative costs of the two ways to a party's compact form on a sparse graph (measured, numpy 2.4 on
# x86-64, n = 300 to 10,000): filtering its rows' chooser lists ~7 ns per listed chooser; from its pairs
# ~2 us per row (four searches in the plan's pairs) + ~65 ns per pair (gathers and a sort).
_FILTER_ENTRY, _PAIRS_ROW, _PAIRS_PAIR = 7, 2000, 65


def _filter_cheaper(listed: int, rows: int, window: int, ring: int) -> bool:
    """Whether filtering ``listed`` chooser entries beats searching ``rows`` rows and sorting their
    pairs, expected to be ``listed`` x window / ring (the window's share of the ring)."""
    return _FILTER_ENTRY * listed * ring <= _PAIRS_ROW * rows * ring + _PAIRS_PAIR * listed * window
_SMALL_MASK_ROWS = 16  # masks over fewer rows are batched (measured: batching loses above ~30 rows)


class _RowMasks:
    """Keystream masks over subsets of one sorted row set, summed into a padded accumulator.

    ``acc`` has one row of ``padded`` words (whole AES blocks) per row; :meth:`add` adds or subtracts
    one key's stream over the rows at ``positions`` (increasing, distinct). The keystream, gathered
    rows and AES input live in reused buffers.
    """

    def __init__(self, rows: np.ndarray, width: int, modulus: Modulus) -> None:
        self.modulus = modulus
        self.width = width
        per_block = 16 // word_bytes(modulus)
        self.blocks = -(-width // per_block)
        self.padded = self.blocks * per_block
        dtype = dtype_of(modulus)
        count = rows.shape[0]
        self.count = count
        # AES input: (row id, block index) as big-endian u64 pairs. The block indices are written
        # once; each call writes only the row ids (raw big-endian bytes) of its rows.
        self._row_ids = rows.astype(">u8").view(np.uint64)
        counters = np.empty((count, self.blocks, 2), dtype=">u8")
        counters[:, :, 1] = np.arange(self.blocks, dtype=np.uint64)[None, :]
        self._input = counters.view(np.uint64)
        self._input_bytes = counters.reshape(-1).view(np.uint8)
        self._stream = np.empty((count + 1, self.padded), dtype=dtype)  # one spare row: AES slack
        self._stream_bytes = self._stream.reshape(-1).view(np.uint8)
        self._gathered = np.empty((count, self.padded), dtype=dtype)
        self.acc = np.zeros((count, self.padded), dtype=dtype)
        row_type = np.dtype((np.void, self.padded * dtype.itemsize))
        self._acc_rows = self.acc.view(row_type).reshape(count)
        self._gathered_rows = self._gathered.view(row_type).reshape(count)
        self._batch: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None  # add_many's buffers

    def stream(self, key: bytes, positions: np.ndarray | None) -> np.ndarray:
        """The mask words of ``key`` for the rows at ``positions`` (all rows if None): a reused buffer."""
        if positions is None:
            size = self.count
            self._input[:, :, 0] = self._row_ids[:, None]
        else:
            size = positions.shape[0]
            self._input[:size, :, 0] = np.take(self._row_ids, positions)[:, None]
        nbytes = size * self.blocks * 16
        aes_blocks_into(key, self._input_bytes[:nbytes], self._stream_bytes[: nbytes + OUTPUT_SLACK])
        words = self._stream[:size]
        if sys.byteorder == "big":  # the keystream is read as little-endian words
            words.byteswap(inplace=True)
        if self.modulus is Modulus.P61:
            np.bitwise_and(words, _P61, out=words)  # in [0, p]: p stands for 0
        return words

    def add(self, key: bytes, positions: np.ndarray | None, subtract: bool) -> None:
        """acc[positions] +=/-= stream(key) (all rows if ``positions`` is None)."""
        words = self.stream(key, positions)
        if positions is None:
            block = self.acc
        else:
            # mode="clip": positions are valid, and "raise" with ``out`` copies through a buffer
            block = np.take(self.acc, positions, axis=0, out=self._gathered[: positions.shape[0]], mode="clip")
        if self.modulus is Modulus.P61:
            (sub_inplace if subtract else add_inplace)(block, words, self.modulus)
        else:
            (np.subtract if subtract else np.add)(block, words, out=block)
        if positions is not None:
            np.put(self._acc_rows, positions, self._gathered_rows[: positions.shape[0]])

    def add_many(self, masks: list[tuple[bytes, np.ndarray, bool]]) -> None:
        """acc[positions] +=/-= stream(key) for every (key, positions, subtract) in ``masks``.

        A mask over few rows (a pair sharing only the dense pseudo-rows, say) costs mostly its numpy
        calls: mod 2^k those go through in batches of up to ``_BATCH_ROWS`` rows in reused buffers --
        each key's counter blocks and keystream written side by side (one AES-ECB call per key, the
        only per-mask step), the subtracted ones negated in one pass, the batch added into the
        accumulator with one unbuffered scatter-add (rows repeat across keys). Larger masks (and every
        mask mod p) go one at a time through :meth:`add`, which is faster for them."""
        if self.modulus is Modulus.P61:
            small, whole = [], []
            large = masks
        else:
            # over every row (a dropout that kept only the dense pseudo-rows, with each survivor)
            whole = [mask for mask in masks if mask[1].shape[0] == self.count and self.count < _SMALL_MASK_ROWS]
            small = [mask for mask in masks if mask[1].shape[0] < _SMALL_MASK_ROWS and mask[1].shape[0] != self.count]
            large = [mask for mask in masks if mask[1].shape[0] >= _SMALL_MASK_ROWS]
        for key, positions, subtract in large:
            self.add(key, positions, subtract)
        if whole and self.count:
            self._add_whole([(key, subtract) for key, _, subtract in whole])
        if not small:
            return
        masks = small
        capacity = max(_BATCH_ROWS, self.count)
        if self._batch is None:
            counters = np.empty((capacity, self.blocks, 2), dtype=np.uint64)  # big-endian words, as raw
            counters[:, :, 1] = np.arange(self.blocks, dtype=np.uint64).astype(">u8").view(np.uint64)[None, :]
            stream = np.empty((capacity + 1, self.padded), dtype=self.acc.dtype)  # one spare row: AES slack
            self._batch = (counters, stream, np.empty(capacity, dtype=np.intp), np.empty(capacity, dtype=bool))
        counters, stream, where, negate = self._batch
        source, target = as_buffer(counters.reshape(-1).view(np.uint8)), as_buffer(stream.reshape(-1).view(np.uint8))
        row_bytes = self.blocks * 16
        fill = 0
        for key, positions, subtract in masks:
            size = positions.shape[0]
            if not size:
                continue
            if fill + size > capacity:
                self._scatter_add(stream[:fill], where[:fill], negate[:fill])
                fill = 0
            counters[fill : fill + size, :, 0] = np.take(self._row_ids, positions)[:, None]
            aes_blocks_into(key, source[fill * row_bytes : (fill + size) * row_bytes],
                            target[fill * row_bytes : (fill + size) * row_bytes + OUTPUT_SLACK])
            where[fill : fill + size] = positions
            negate[fill : fill + size] = subtract
            fill += size
        if fill:
            self._scatter_add(stream[:fill], where[:fill], negate[:fill])

    def _add_whole(self, masks: list[tuple[bytes, bool]]) -> None:
        """acc +=/-= stream(key) over every row, for each (key, subtract) -- mod 2^k, few rows: the
        counter blocks are written once, each key's keystream goes into its own slot of a reused
        buffer (one AES-ECB call per key, the only per-mask step), and the slots are summed at once."""
        count, per_key = self.count, self.count * self.blocks * 16
        self._input[:, :, 0] = self._row_ids[:, None]
        source = as_buffer(self._input_bytes)
        keys = max(1, _BATCH_ROWS // max(count, 1))
        stream = np.empty((keys * count + 1, self.padded), dtype=self.acc.dtype)  # one spare row: AES slack
        target = as_buffer(stream.reshape(-1).view(np.uint8))
        for sign in (False, True):
            group = [key for key, subtract in masks if subtract is sign]
            for first in range(0, len(group), keys):
                batch = group[first : first + keys]
                for at, key in enumerate(batch):
                    aes_blocks_into(key, source, target[at * per_key : (at + 1) * per_key + OUTPUT_SLACK])
                words = stream[: len(batch) * count]
                if sys.byteorder == "big":  # the keystream is read as little-endian words
                    words.byteswap(inplace=True)
                total = np.add.reduce(words.reshape(len(batch), count, self.padded), axis=0)  # wraps: mod 2^k
                (np.subtract if sign else np.add)(self.acc, total, out=self.acc)

    def _scatter_add(self, words: np.ndarray, where: np.ndarray, negate: np.ndarray) -> None:
        if sys.byteorder == "big":  # the keystream is read as little-endian words
            words.byteswap(inplace=True)
        np.subtract(words.dtype.type(0), words, out=words, where=negate[:, None])  # -w mod 2^k
        np.add.at(self.acc, where, words)  # wraps: the sum mod 2^k

    def add_rows(self, positions: np.ndarray, rows: np.ndarray) -> None:
        """acc[positions] += rows (another accumulator's, same padding), mod the modulus."""
        block = np.take(self.acc, positions, axis=0, out=self._gathered[: positions.shape[0]], mode="clip")
        add_inplace(block, rows, self.modulus)
        np.put(self._acc_rows, positions, self._gathered_rows[: positions.shape[0]])

    def apply_to(self, target: np.ndarray) -> None:
        """target += acc (the first ``width`` words of each row), mod the modulus."""
        add_inplace(target, self.acc[:, : self.width], self.modulus)


def row_keystream(key: bytes, rows: np.ndarray, width: int, modulus: Modulus) -> np.ndarray:
    """Mask words for ``rows`` (uint64 row ids): an array of shape (len(rows), width)."""
    rows = np.asarray(rows, dtype=np.uint64)
    if rows.shape[0] == 0:
        return np.zeros((0, width), dtype=dtype_of(modulus))
    return _RowMasks(rows, width, modulus).stream(key, None)[:, :width].copy()


def _sorted_rows(rows: object, name: str, copy: bool = True) -> np.ndarray:
    array = np.asarray(rows)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "ui"):
        raise InvalidParameters(f"{name} must be a vector of integer row ids")
    array = array.astype(np.uint64, copy=copy)
    if array.shape[0] > 1 and not bool(np.all(array[1:] > array[:-1])):
        raise InvalidParameters(f"{name} must be sorted and distinct")
    return array


def _check_width(width: object) -> None:
    if not isinstance(width, int) or isinstance(width, bool) or not 1 <= width <= 1 << 16:
        raise InvalidParameters("width must be in [1, 65536]")


class ClientRowPlan:
    """One party's part of the plan: its rows and, per other party, the rows both chose.

    ``shared`` maps each peer it shares rows with to those rows (built when read). A plan made by
    :meth:`RowPlan.for_client` keeps only a reference to the server's plan and finds the shared rows
    peer by peer when it is used; a plan given explicitly or decoded keeps them as positions into
    ``rows``.
    """

    __slots__ = ("party_id", "width", "rows", "_peers", "_offsets", "_positions", "_source")

    def __init__(self, party_id: int, width: int, rows: object, shared: Mapping[int, object] | None = None) -> None:
        _check_width(width)
        rows = _sorted_rows(rows, "rows")
        peers, offsets, positions = [], [0], []
        for peer, common in sorted((shared or {}).items()):
            if int(peer) == int(party_id):
                raise InvalidParameters("a plan's partners are the other parties")
            common = _sorted_rows(common, "shared rows")
            where = np.searchsorted(rows, common)
            if common.size and (int(where.max()) >= rows.shape[0] or not np.array_equal(rows[where], common)):
                raise InvalidParameters(f"rows shared with party {peer} are not among this party's rows")
            peers.append(int(peer))
            positions.append(where.astype(np.int64))
            offsets.append(offsets[-1] + where.shape[0])
        self._init(party_id, width, rows)
        self._peers = np.array(peers, dtype=np.int64)
        self._offsets = np.array(offsets, dtype=np.int64)
        self._positions = np.concatenate(positions) if positions else np.zeros(0, dtype=np.int64)

    def _init(self, party_id: int, width: int, rows: np.ndarray, source: tuple[RowPlan, int] | None = None) -> None:
        self.party_id = party_id
        self.width = width
        self.rows = rows
        self._source = source

    @classmethod
    def _from_plan(cls, plan: RowPlan, party: int) -> ClientRowPlan:
        self = cls.__new__(cls)
        self._init(party, plan.width, plan.chosen[party], (plan, party))
        return self  # no positions form (_peers, _offsets, _positions): the rows are read from the plan

    @property
    def input_length(self) -> int:
        return int(self.rows.shape[0]) * self.width

    def sharing_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`sharing` as three arrays (peers, offsets, positions): ``peers[i]`` (increasing) shares
        the rows at ``positions[offsets[i]:offsets[i + 1]]``; peers sharing none are left out. Reads
        the positions form without a loop over peers (a decoded plan's); a plan over a server's plan
        is gathered peer by peer."""
        if self._source is not None:
            pairs = list(self.sharing())
            peers = np.array([peer for peer, _ in pairs], dtype=np.int64)
            sizes = np.array([where.shape[0] for _, where in pairs], dtype=np.int64)
            positions = (np.concatenate([where for _, where in pairs]) if pairs
                         else np.zeros(0, dtype=np.int64))
        else:
            sizes = np.diff(self._offsets)
            keep = sizes > 0
            peers, sizes = self._peers[keep], sizes[keep]
            positions = self._positions if bool(keep.all()) else self._positions[np.repeat(keep, np.diff(self._offsets))]
        offsets = np.zeros(peers.shape[0] + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        return peers, offsets, positions

    def partner_counts(self, among: np.ndarray | None = None) -> np.ndarray:
        """Per row of ``rows``, how many peers share it with this party (only peers in ``among``, an
        array of party ids, when given)."""
        peers, offsets, positions = self.sharing_arrays()
        if among is not None:
            positions = positions[np.repeat(np.isin(peers, among), np.diff(offsets))]
        return np.bincount(positions, minlength=self.rows.shape[0]).astype(np.int64)

    def sharing(self) -> Iterator[tuple[int, np.ndarray]]:
        """(peer, positions in ``rows`` of the rows both chose), by increasing peer, peers sharing none left out."""
        if self._source is not None:
            plan, party = self._source
            yield from plan._shared_positions(party)
            return
        for index, peer in enumerate(self._peers.tolist()):
            positions = self._positions[self._offsets[index] : self._offsets[index + 1]]
            if positions.size:
                yield peer, positions

    @property
    def shared(self) -> dict[int, np.ndarray]:
        return {peer: self.rows[positions] for peer, positions in self.sharing()}

    def mask(self, vector: np.ndarray, self_key: bytes, pair_keys: Mapping[int, bytes], modulus: Modulus) -> None:
        """Add the self mask over all rows and +/- the pairwise mask over each shared row set, in place."""
        blocks = vector.reshape(-1, self.width)
        masks = _RowMasks(self.rows, self.width, modulus)
        masks.add(self_key, None, subtract=False)
        sharing = list(self.sharing())
        peers = [peer for peer, _ in sharing]
        keys = (pair_keys.select(peers, missing_ok=True) if isinstance(pair_keys, PackedTable)
                else [pair_keys.get(peer) for peer in peers])  # one lookup for ~1,000 peers
        for (peer, positions), key in zip(sharing, keys):
            if key is not None:
                masks.add(key, positions, subtract=self.party_id < peer)
        masks.apply_to(blocks)

    def _columns_and_bits(self) -> tuple[np.ndarray, np.ndarray]:
        """The bitmap form: the parties that share a row with this one, itself included (increasing),
        and per row a packed bitmap over them (numpy's big-endian bit order)."""
        if self._source is not None:
            plan, party = self._source
            return plan._client_bits(party)
        sharing = list(self.sharing())
        columns = np.array(sorted([self.party_id, *(peer for peer, _ in sharing)]), dtype=np.int64)
        member = np.zeros((self.rows.shape[0], columns.shape[0]), dtype=bool)
        member[:, int(np.searchsorted(columns, self.party_id))] = True
        for peer, positions in sharing:
            member[positions, int(np.searchsorted(columns, peer))] = True
        return columns, np.packbits(member, axis=1)

    def encode(self, parties: object = None) -> bytes:
        """Canonical bytes: with ``parties`` (the secure sum's party ids) the compact form (type 18);
        without, the positions form (type 8) or the bitmap form (type 10), whichever is shorter (the
        positions form on a tie; decoding refuses the longer one)."""
        if parties is not None:
            members = np.asarray(parties, dtype=np.int64).reshape(-1)
            if members.shape[0] > 1 and not bool(np.all(members[1:] > members[:-1])):
                members = np.unique(members)
            return self._encode_compact(members)
        count = self.rows.shape[0]
        if self._source is not None and self._source[0]._window is not None:
            return self._encode_sparse_source(count)
        columns, bits = self._columns_and_bits()
        entries = int(np.take(_POPCOUNT, bits).sum()) - count  # (peer, row) pairs, itself left out
        writer = Writer(ProtocolCode.SECAGG, _PLAN_TYPE if not _bitmap_shorter(count, columns.shape[0], entries)
                        else _PLAN_BITMAP_TYPE)
        writer.u32(self.party_id).u32(self.width)
        writer.u32(count).fixed(self.rows.astype(">u8").tobytes(), 8 * count)
        if _bitmap_shorter(count, columns.shape[0], entries):
            writer.u32(columns.shape[0]).fixed(columns.astype(">u4").tobytes(), 4 * columns.shape[0])
            return writer.fixed(bits.tobytes(), bits.size).finish()
        sharing = _sharing_from_bits(self.party_id, columns, bits) if self._source is not None else list(self.sharing())
        writer.u32(len(sharing))
        for peer, positions in sharing:
            writer.u32(peer).u32(positions.shape[0]).fixed(positions.astype(">u4").tobytes(), 4 * positions.shape[0])
        return writer.finish()

    def _encode_sparse_source(self, count: int) -> bytes:
        """The positions or bitmap form of a server plan's party on a sparse graph: the form is chosen
        from the pair count first, and the bitmap is built only where it is the shorter one."""
        plan, party = self._source  # type: ignore[misc]
        window, where = plan._window, plan.positions(party)
        assert window is not None
        pairs = window.pairs(party, where)
        peers, offsets, positions = window.sharing(party, where, pairs)
        bitmap = _bitmap_shorter(count, peers.shape[0] + 1, positions.shape[0])
        writer = Writer(ProtocolCode.SECAGG, _PLAN_BITMAP_TYPE if bitmap else _PLAN_TYPE)
        writer.u32(self.party_id).u32(self.width)
        writer.u32(count).fixed(self.rows.astype(">u8").tobytes(), 8 * count)
        if bitmap:
            columns, bits = window.client_bits(party, where, pairs)
            writer.u32(columns.shape[0]).fixed(columns.astype(">u4").tobytes(), 4 * columns.shape[0])
            return writer.fixed(bits.tobytes(), bits.size).finish()
        # per peer: its id, its count and its positions, as one array of big-endian u32 words
        sizes = np.diff(offsets)
        words = np.empty(2 * peers.shape[0] + positions.shape[0], dtype=">u4")
        heads = offsets[:-1] + 2 * np.arange(peers.shape[0], dtype=np.int64)
        words[heads], words[heads + 1] = peers, sizes
        body = np.ones(words.shape[0], dtype=bool)
        body[heads], body[heads + 1] = False, False
        words[body] = positions
        writer.u32(peers.shape[0])
        return writer.fixed(words.tobytes(), 4 * words.shape[0]).finish()

    def _encode_compact(self, parties: np.ndarray) -> bytes:
        own = int(np.searchsorted(parties, self.party_id))
        if own >= parties.shape[0] or int(parties[own]) != self.party_id:
            raise InvalidParameters("the plan's party is not a party of the sum")
        writer = Writer(ProtocolCode.SECAGG, _PLAN_COMPACT_TYPE).u32(self.party_id).u32(self.width)
        count = self.rows.shape[0]
        if self._source is not None:
            # Full graph: a row's choosers are the same list for each of them (codes built once per row).
            # On a sparse graph each chooser's list is its own neighbours on that row (from its pairs).
            plan, party = self._source
            counts, k, unary, remainders = plan._compact_client(party, parties)
            return _write_compact(writer, self.rows, counts, k, unary, remainders)
        row_parts, index_parts = [np.arange(count, dtype=np.int64)], [np.full(count, own, dtype=np.int64)]
        for peer, positions in self.sharing():
            where = int(np.searchsorted(parties, peer))
            if where >= parties.shape[0] or int(parties[where]) != peer:
                raise InvalidParameters(f"partner {peer} is not a party of the sum")
            row_parts.append(np.asarray(positions, dtype=np.int64))
            index_parts.append(np.full(positions.shape[0], where, dtype=np.int64))
        keys = np.sort(np.concatenate(row_parts) * parties.shape[0] + np.concatenate(index_parts))
        counts = np.bincount(keys // parties.shape[0], minlength=count).astype(np.int64)
        k = _compact_k(count, parties.shape[0], keys.shape[0])
        unary, _, remainders, _ = _aligned_codes(counts, _row_gaps(counts, keys % parties.shape[0]), k)
        return _write_compact(writer, self.rows, counts, k, unary, remainders)

    @classmethod
    def _decode_compact_plan(cls, reader: Reader, parties: object) -> ClientRowPlan:
        """The compact form (type 18) after its type byte, read against the sum's party ids."""
        if parties is None:
            raise DecodeError("a compact row plan is read against the secure sum's parties")
        party, width = reader.u32(), reader.u32()
        _check_width(width)
        members = np.asarray(parties, dtype=np.int64).reshape(-1)
        if members.shape[0] > 1 and not bool(np.all(members[1:] > members[:-1])):
            members = np.unique(members)
        rows, peers, offsets, positions = _decode_compact(reader, party, members)
        reader.done()
        plan = cls.__new__(cls)
        plan._init(party, width, rows)
        plan._peers, plan._offsets, plan._positions = peers, offsets, positions
        return plan

    @classmethod
    def decode(cls, data: bytes, parties: object = None) -> ClientRowPlan:
        """Decode a plan; the compact form (type 18) needs ``parties``, the sum's party ids."""
        try:
            reader = Reader(data, ProtocolCode.SECAGG)
            kind = reader.u8()
            if kind == _PLAN_COMPACT_TYPE:
                return cls._decode_compact_plan(reader, parties)
            if kind not in (_PLAN_TYPE, _PLAN_BITMAP_TYPE):
                raise DecodeError("not a row plan")
            party, width = reader.u32(), reader.u32()
            count = reader.count(MAX_ROWS, 8)
            rows = _sorted_rows(np.frombuffer(reader.fixed(8 * count), dtype=">u8").astype(np.uint64), "rows")
            _check_width(width)
            if kind == _PLAN_BITMAP_TYPE:
                peers, offsets, chunks = _decode_bitmap_form(reader, party, count)
                entries = offsets[-1]
            else:
                peers, offsets, chunks = [], [0], []
                last = 0
                for _ in range(reader.count(MAX_CLIENTS, 8)):
                    peer = reader.u32()
                    if peer <= last:
                        raise DecodeError("peers must be strictly increasing")
                    last = peer
                    size = reader.count(count, 4)
                    # Kept as 32-bit positions into ``rows`` (a plan holds one per row a peer shares).
                    positions = np.frombuffer(reader.fixed(4 * size), dtype=">u4").astype(np.int32)
                    if size and (int(positions.max()) >= count or not bool(np.all(np.diff(positions) > 0))):
                        raise DecodeError("shared row positions out of order or range")
                    if peer == party or not size:
                        raise DecodeError("a plan lists only other parties, each with the rows it shares")
                    peers.append(peer)
                    chunks.append(positions)
                    offsets.append(offsets[-1] + size)
                entries = offsets[-1]
            reader.done()
            if (kind == _PLAN_BITMAP_TYPE) != _bitmap_shorter(count, len(peers) + 1, entries):
                raise DecodeError("a row plan must take its shorter form")
        except InvalidParameters as exc:
            raise DecodeError(f"invalid row plan: {exc}") from None
        plan = cls.__new__(cls)
        plan._init(party, width, rows)
        plan._peers = np.array(peers, dtype=np.int64)
        plan._offsets = np.array(offsets, dtype=np.int64)
        plan._positions = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int32)
        return plan


def _bitmap_shorter(count: int, columns: int, entries: int) -> bool:
    """Whether the bitmap form is strictly shorter than the positions form for ``count`` rows,
    ``columns`` parties (itself included) and ``entries`` (peer, shared row) pairs."""
    positions_form = 8 * (columns - 1) + 4 * entries
    bitmap_form = 4 * columns + count * ((columns + 7) // 8)
    return bitmap_form < positions_form


def _sharing_from_bits(party: int, columns: np.ndarray, bits: np.ndarray,
                       dtype: type = np.int32) -> list[tuple[int, np.ndarray]]:
    """(peer, increasing positions of the rows it shares), by increasing peer, from the bitmap form;
    the positions of all peers are slices of one array of ``dtype``."""
    member = np.unpackbits(bits, axis=1, count=columns.shape[0])
    member[:, int(np.searchsorted(columns, party))] = 0
    count = member.shape[0]
    if not count:
        return []
    # grouped by column, rows increasing within each: the set cells of the transpose (made contiguous
    # first: scanning a strided view is many times slower), scanned flat as booleans (several times
    # faster than a 2-D nonzero) and split by column
    cells = np.flatnonzero(np.ascontiguousarray(member.T).view(bool))
    cols, positions = np.divmod(cells, count)
    positions = positions.astype(dtype, copy=False)
    cuts = (np.flatnonzero(np.diff(cols)) + 1).tolist()
    starts, ends = [0, *cuts], [*cuts, cells.shape[0]]
    peers = columns[cols[starts[: len(ends)]]].tolist() if cells.shape[0] else []
    return [(int(peer), positions[low:high]) for peer, low, high in zip(peers, starts, ends)]


def _decode_bitmap_form(reader: Reader, party: int, count: int) -> tuple[list[int], list[int], list[np.ndarray]]:
    columns_count = reader.count(MAX_CLIENTS + 1, 4)
    columns = np.frombuffer(reader.fixed(4 * columns_count), dtype=">u4").astype(np.int64)
    if columns_count and not bool(np.all(np.diff(columns) > 0)):
        raise DecodeError("plan columns must be strictly increasing")
    own = int(np.searchsorted(columns, party))
    if own >= columns_count or int(columns[own]) != party:
        raise DecodeError("the plan's columns must include its own party")
    stride = (columns_count + 7) // 8
    bits = np.frombuffer(reader.fixed(count * stride), dtype=np.uint8).reshape(count, stride)
    member = np.unpackbits(bits, axis=1)
    if member.shape[1] > columns_count and bool(member[:, columns_count:].any()):
        raise DecodeError("padding bits of a plan bitmap must be zero")
    member = member[:, :columns_count]
    if count and not bool(member[:, own].all()):
        raise DecodeError("every row of a plan must have its own party's bit set")
    member[:, own] = 0
    if columns_count > 1 and count and not bool(np.asarray(member.any(axis=0))[np.arange(columns_count) != own].all()):
        raise DecodeError("every other column of a plan must share a row")
    if not count and columns_count != 1:
        raise DecodeError("a plan without rows lists no other party")
    cols, positions = np.nonzero(member.T)
    cuts = np.flatnonzero(np.diff(cols)) + 1
    peers, offsets, chunks = [], [0], []
    for group, chunk in zip(np.split(cols, cuts), np.split(positions, cuts)):
        if group.size:
            peers.append(int(columns[group[0]]))
            chunks.append(chunk.astype(np.int32))
            offsets.append(offsets[-1] + chunk.shape[0])
    return peers, offsets, chunks


def _positions_of(union: np.ndarray, rows: np.ndarray, where: np.ndarray) -> bool:
    """Whether ``where`` are the positions of ``rows`` in ``union``."""
    if where.shape != rows.shape:
        return False
    return not rows.size or (0 <= int(where.min()) and int(where.max()) < union.shape[0]
                             and bool(np.array_equal(union[where], rows)))


class RowPlan:
    """The whole plan (server side): the row universe and each party's chosen rows."""

    def __init__(self, union: object, width: int, chosen: Mapping[int, object],
                 ring: Sequence[int] | None = None, neighbours: int | None = None, *,
                 known: Mapping[int, np.ndarray] | None = None) -> None:
        """``union`` and ``chosen``'s arrays are kept as given when already uint64 (a server's plan
        holds every party's rows once): they must not be changed afterwards. ``known``: each party's
        rows' positions in ``union`` when the caller found them already (checked against the rows in
        one gather instead of searched)."""
        union = _sorted_rows(union, "union", copy=False)
        _check_width(width)
        self.union = union
        self.width = width
        parties, positions = {}, {}
        for party, rows in sorted(chosen.items()):
            rows = _sorted_rows(rows, f"rows of party {party}", copy=False)
            where = None if known is None else known.get(party)
            if where is None or not _positions_of(union, rows, where):  # a wrong hint is searched again
                where = np.searchsorted(union, rows)
                if not _positions_of(union, rows, where):
                    raise InvalidParameters(f"party {party} chose rows outside the union")
            parties[party], positions[party] = rows, where
        self.chosen: Mapping[int, np.ndarray] = parties
        self._positions: dict[int, np.ndarray] = positions
        self._parties = np.array(sorted(parties), dtype=np.int64)
        self._bits: np.ndarray | None = None  # per union row, a packed bitmap over _parties (built once)
        self._compact: dict[bytes, Any] = {}  # per party list (and Rice parameter): the union rows' codes
        # sparse: per party list, the rows' chooser indices in it
        self._indices: dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        # A sparse graph (ring order and k < n - 1): a chooser masks a row with its neighbours that
        # chose it, and with nobody else (protocols/submodel/spec.md, "Sparse rows").
        self._window: _RingWindow | None = None
        if ring is not None and neighbours is not None and neighbours < len(ring) - 1:
            self._window = _RingWindow(ring, neighbours, self._positions)

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

    def _bitmap(self) -> np.ndarray:
        """Per union row, who chose it: a packed bitmap over the plan's parties (numpy's bit order)."""
        if self._bits is None:  # set bit by bit per party: no (rows x parties) boolean array
            parties = self._parties
            bits = np.zeros((self.union.shape[0], (parties.shape[0] + 7) // 8), dtype=np.uint8)
            for column, party in enumerate(parties.tolist()):
                bits[self._positions[party], column >> 3] |= np.uint8(0x80 >> (column & 7))
            self._bits = bits
        return self._bits

    def _client_bits(self, party: int) -> tuple[np.ndarray, np.ndarray]:
        """A party's plan in bitmap form: the parties sharing a row with it (itself included) and its
        rows' bitmaps over them."""
        if self._window is not None:
            return self._window.client_bits(party, self._positions[party])
        bits = np.take(self._bitmap(), self._positions[party], axis=0)
        parties = self._parties
        if bits.shape[0]:
            used = np.unpackbits(np.bitwise_or.reduce(bits, axis=0), count=parties.shape[0]).astype(bool)
        else:
            used = parties == party
        if bool(used.all()):
            return parties, bits
        member = np.unpackbits(bits, axis=1, count=parties.shape[0])[:, used]
        return parties[used], np.packbits(member, axis=1)

    def _chooser_table(self, parties: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per union row, where its choosers start and (grouped by row) the within-row gaps of their
        indices in ``parties`` (built once per party list; 2 or 4 bytes an entry)."""
        key = parties.tobytes()
        table = self._compact.get(key)
        if table is None:
            counts = self.choosers()
            starts = _row_starts(counts)
            cursor = starts[:-1].copy()
            where = np.searchsorted(parties, self._parties)
            if self._parties.size and (int(where.max()) >= parties.shape[0]
                                       or not np.array_equal(parties[where], self._parties)):
                raise InvalidParameters("every party of the plan must be a party of the sum")
            small = np.uint16 if parties.shape[0] <= 1 << 16 else np.uint32
            gaps = np.empty(int(starts[-1]), dtype=small)
            last = np.full(counts.shape[0], -1, dtype=np.int64)
            for column, party in zip(where.tolist(), self._parties.tolist()):  # parties in increasing order
                rows = self._positions[party]
                gaps[cursor[rows]] = column - last[rows] - 1
                cursor[rows] += 1
                last[rows] = column
            table = (starts, gaps)
            self._compact[key] = table
        return table

    def _sparse_sharing(self, party: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """On a sparse graph, :meth:`_RingWindow.sharing` for ``party``: from the rows' chooser lists
        over the plan's parties or from its pairs, whichever :func:`_filter_cheaper` expects to cost
        less (same answer)."""
        window, where = self._window, self._positions[party]
        assert window is not None
        # any party list's table will do (each holds every party of the plan): the sum's, if built
        parties = self._indices[next(iter(self._indices))][0] if self._indices else self._parties
        starts, index = self._chooser_indices(parties)  # type: ignore[misc]
        listed = int((starts[where + 1] - starts[where]).sum())
        if _filter_cheaper(listed, where.shape[0], 2 * window.half + 1, window.n):
            return window.sharing_filtered(party, where, parties, starts, index)
        return window.sharing(party, where)

    def _chooser_indices(self, parties: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Per union row, where its choosers start and (grouped by row, increasing within each) their
        indices in ``parties`` (built once per party list, 2 or 4 bytes an entry); None where a party
        of the plan is not a party of the sum (the per-pair path then names the partner outside)."""
        key = parties.tobytes()
        if key not in self._indices:
            where = np.searchsorted(parties, self._parties)
            if self._parties.size and (int(where.max()) >= parties.shape[0]
                                       or not np.array_equal(parties[where], self._parties)):
                return None
            counts = self.choosers()
            starts = _row_starts(counts)
            cursor = starts[:-1].copy()
            index = np.empty(int(starts[-1]), dtype=np.uint16 if parties.shape[0] <= 1 << 16 else np.uint32)
            for column, party in zip(where.tolist(), self._parties.tolist()):  # parties in increasing order
                rows = self._positions[party]
                index[cursor[rows]] = column
                cursor[rows] += 1
            if len(self._indices) > 1:  # the plan's own parties and the sum's (usually the same list)
                self._indices.pop(next(iter(self._indices)))
            self._indices[key] = (parties, starts, index)
        return self._indices[key][1:]

    def _compact_client(self, party: int, parties: np.ndarray) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
        """A party's compact plan: per row the chooser counts, the Rice parameter, the unary codes and
        the remainder fields -- on the full graph byte ranges of the union rows' codes (encoded once
        per parameter, in slices of rows so that no temporary holds every entry); on a sparse graph
        encoded by keeping the window's entries of its rows' chooser lists or from its own (row,
        partner) pairs, whichever :func:`_filter_cheaper` expects to cost less (same bytes)."""
        if self._window is not None:
            window, where = self._window, self._positions[party]
            lists = self._chooser_indices(parties)
            if lists is not None:
                listed = int((lists[0][where + 1] - lists[0][where]).sum())  # the choosers of its rows
                if _filter_cheaper(listed, where.shape[0], 2 * window.half + 1, window.n):
                    return window.compact_filtered(party, where, parties, *lists)
            return window.compact(party, where, parties)
        starts, table = self._chooser_table(parties)
        rows = self._positions[party]
        counts = starts[rows + 1] - starts[rows]
        k = _compact_k(rows.shape[0], parties.shape[0], int(counts.sum()))
        key = parties.tobytes() + bytes([k])
        codes = self._compact.get(key)
        if codes is None:
            all_counts = np.diff(starts)
            pieces, step = [], max(1, (1 << 20) // max(1, int(all_counts.mean()) if all_counts.size else 1))
            for low in range(0, all_counts.shape[0], step):
                high = min(all_counts.shape[0], low + step)
                pieces.append(_aligned_codes(all_counts[low:high], table[starts[low]:starts[high]].astype(np.int64), k))
            codes = (np.concatenate([p[0] for p in pieces]) if pieces else np.zeros(0, np.uint8),
                     _row_starts(np.concatenate([np.diff(p[1]) for p in pieces]) if pieces else np.zeros(0, np.int64)),
                     np.concatenate([p[2] for p in pieces]) if pieces else np.zeros(0, np.uint8),
                     _row_starts(np.concatenate([np.diff(p[3]) for p in pieces]) if pieces else np.zeros(0, np.int64)))
            self._compact[key] = codes
        unary, unary_off, remainders, rem_off = codes
        return counts, k, _gather_ranges(unary, unary_off, rows), _gather_ranges(remainders, rem_off, rows)

    def partners(self, party: int) -> np.ndarray:
        """The other parties that share at least one row with ``party`` (increasing)."""
        if party not in self._positions:
            return np.zeros(0, dtype=np.int64)
        if self._window is not None:
            return self._sparse_sharing(party)[0]
        columns, _ = self._client_bits(party)
        return columns[columns != party]

    def _shared_positions(self, party: int, in_union: bool = False,
                          dtype: type = np.int64) -> Iterator[tuple[int, np.ndarray]]:
        """(peer, positions of the rows both chose) for every other party sharing a row, by increasing
        peer: positions among ``party``'s rows (as ``dtype``), or in the union with ``in_union``."""
        where = self._positions[party]
        if self._window is not None:  # from the party's pairs: no bitmap
            peers, offsets, positions = self._sparse_sharing(party)
            positions = np.take(where.astype(np.int64), positions) if in_union else positions.astype(dtype, copy=False)
            bounds = offsets.tolist()
            for index, peer in enumerate(peers.tolist()):
                yield peer, positions[bounds[index] : bounds[index + 1]]
            return
        columns, bits = self._client_bits(party)
        for peer, positions in _sharing_from_bits(party, columns, bits, np.int64 if in_union else dtype):
            yield peer, (np.take(where, positions) if in_union else positions)

    def for_client(self, party: int) -> ClientRowPlan:
        """The party's rows and, per other party, the rows both chose (found when the plan is used)."""
        if party not in self.chosen:
            raise InvalidParameters(f"party {party} is not in the plan")
        return ClientRowPlan._from_plan(self, party)

    def accumulate(self, total: np.ndarray, party: int, vector: np.ndarray, modulus: Modulus) -> None:
        blocks = total.reshape(-1, self.width)
        where = self._positions[party]
        block = np.take(blocks, where, axis=0, mode="clip")  # valid positions; gather and scatter whole rows
        add_inplace(block, vector.reshape(-1, self.width), modulus)
        row_type = np.dtype((np.void, self.width * blocks.itemsize))
        np.put(blocks.view(row_type).reshape(-1), where, block.view(row_type).reshape(-1), mode="clip")

    def unmasker(self, modulus: Modulus) -> RowUnmasker:
        """Sums the masks the server takes out at unmasking, over the union, and applies them once."""
        return RowUnmasker(self, modulus)


class RowUnmasker:
    """The server's unmasking over the union: self masks of survivors and pair masks with the dropped,
    summed into one accumulator (keystream buffers reused) and taken out of the sum once."""

    def __init__(self, plan: RowPlan, modulus: Modulus) -> None:
        self.plan = plan
        self._masks = _RowMasks(plan.union, plan.width, modulus)

    def remove_self_mask(self, party: int, key: bytes) -> None:
        self._masks.add(key, self.plan.positions(party), subtract=True)

    def remove_pair_masks(self, dropped: int, keys: Mapping[int, bytes],
                          sharing: list[tuple[int, np.ndarray]] | None = None) -> None:
        """For each survivor in ``keys``: take out what it added for the pair (survivor, dropped).

        All those rows are among ``dropped``'s rows: the masks are summed over them (an accumulator
        the size of one party's rows, as a client masks) and added into the union's once.
        ``sharing``: ``dropped``'s (peer, positions) pairs when the caller has found them already."""
        plan = self.plan
        if dropped not in plan.chosen or not keys:  # not in the plan (or no survivor shares its rows)
            return
        masks = _RowMasks(plan.chosen[dropped], plan.width, self._masks.modulus)
        if sharing is None:
            sharing = list(plan._shared_positions(dropped))
        # survivor added +mask if survivor > dropped, -mask otherwise
        masks.add_many([(keys[survivor], positions, survivor > dropped)
                        for survivor, positions in sharing if survivor in keys])
        self._masks.add_rows(plan.positions(dropped), masks.acc)

    def apply_to(self, total: np.ndarray) -> None:
        self._masks.apply_to(total.reshape(-1, self.plan.width))


def row_pair_masks(rows: np.ndarray, width: int, modulus: Modulus,
                   masks: list[tuple[bytes, np.ndarray, bool]]) -> np.ndarray:
    """One dropped party's pair masks from arrays alone (what :meth:`RowUnmasker.remove_pair_masks`
    sums; run on a worker by :mod:`fedprivacy.secagg.unmasking`): the (len(rows), padded width)
    accumulator of +/- stream(key) over each (key, positions among ``rows``, subtract) of ``masks``."""
    local = _RowMasks(rows, width, modulus)
    local.add_many(masks)
    return local.acc


def row_mask_sum(union: np.ndarray, width: int, modulus: Modulus, self_masks: Sequence[tuple[bytes, np.ndarray]],
                 pair_blocks: Iterable[tuple[np.ndarray, np.ndarray]] = ()) -> np.ndarray:
    """What :class:`RowUnmasker` sums, from arrays alone: the (union rows, padded width) accumulator of
    -stream(key) over each (key, union positions) of ``self_masks``, with each (union positions,
    block) of ``pair_blocks`` (a :func:`row_pair_masks` result and its rows' positions; read after the
    self masks are summed) added in. The first ``width`` words of each row are to be added to the sum."""
    total = _RowMasks(np.asarray(union, dtype=np.uint64), width, modulus)
    for key, positions in self_masks:
        total.add(key, positions, subtract=True)
    for positions, block in pair_blocks:
        total.add_rows(positions, block)
    return total.acc


# -- the compact plan form (type 18) ----------------------------------------------------------------
#
# Per row of C_u, the indices of its choosers in the secure sum's party list (u itself included, so a
# row's code is the same for every chooser and the server encodes each union row once per Rice
# parameter), coded as within-row gaps split by one Rice parameter k: per row, the quotients in unary
# (a one ends each) and the remainders as k-bit fields, each row's unary code and each row's fields
# starting on a byte of their stream. The party list is not sent: it is the rows' secure-sum
# config's (``protocols/secagg/spec.md`` §12).


def _compact_k(rows: int, parties: int, entries: int) -> int:
    """The canonical Rice parameter: that of ``entries`` ones spread over ``rows`` x ``parties`` cells."""
    return rice_parameter(entries, rows * parties - 1)


def _row_starts(counts: np.ndarray) -> np.ndarray:
    """Where each row's entries start (entries grouped by row, ``counts`` per row), and the total."""
    starts = np.zeros(counts.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    return starts


def _row_gaps(counts: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Within-row gaps of increasing indices (a row's first gap counts from 0)."""
    gaps = np.empty(indices.shape[0], dtype=np.int64)
    gaps[1:] = indices[1:] - indices[:-1] - 1
    firsts = _row_starts(counts)[:-1][counts > 0]
    gaps[firsts] = indices[firsts]
    return gaps


def _aligned_codes(counts: np.ndarray, gaps: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row (``counts`` gaps each), its unary code and its k-bit remainder fields, each padded to a
    byte: (unary bytes, unary row offsets, remainder bytes, remainder row offsets).

    Both streams are built with the rows back to back (no per-entry row lookups) and then spread to
    their byte-aligned places in one masked copy (:func:`_padded_rows`)."""
    starts = _row_starts(counts)
    entries = gaps.shape[0]
    steps = np.zeros(entries + 1, dtype=np.int64)
    np.cumsum((gaps >> k) + 1, out=steps[1:])  # a gap's unary code: gap >> k zeros, then a one
    lengths = steps[starts[1:]] - steps[starts[:-1]]  # each row's code, in bits
    stream = np.zeros(int(steps[-1]), dtype=np.uint8)
    stream[steps[1:] - 1] = 1
    del steps
    unary_off = _row_starts((lengths + 7) >> 3)
    unary = _padded_rows(stream, lengths, unary_off)
    del stream
    rem_off = _row_starts((counts * k + 7) >> 3)
    if not k:
        return unary, unary_off, np.zeros(0, dtype=np.uint8), rem_off
    # each gap's low k bits, most significant first: one (entries x k) bit array
    if k <= 8:  # a table of the k bits of each k-bit value, indexed by the gaps' low bits
        table = np.unpackbits(np.arange(1 << k, dtype=np.uint8).reshape(-1, 1), axis=1)[:, 8 - k :].copy()
        fields = np.take(table, (gaps & ((1 << k) - 1)).astype(np.uint8), axis=0)
    else:
        fields = np.stack([((gaps >> (k - 1 - bit)) & 1).astype(np.uint8) for bit in range(k)], axis=1)
    return unary, unary_off, _padded_rows(fields.reshape(-1), counts * k, rem_off), rem_off


def _padded_rows(stream: np.ndarray, lengths: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Rows of bits (``stream``: 0/1 bytes, row after row, ``lengths`` bits each), each put at the start
    of its byte range ``offsets[r]:offsets[r + 1]`` with zeros after it: the packed bytes."""
    bits = np.zeros(8 * int(offsets[-1]), dtype=np.uint8)
    data = np.ones(bits.shape[0], dtype=bool)
    _, padding = _concatenated_ranges(8 * offsets[:-1] + lengths, 8 * offsets[1:])
    data[padding] = False
    bits[data] = stream
    return np.packbits(bits)


def _gather_ranges(data: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The concatenated byte ranges [offsets[r], offsets[r + 1]) of ``rows``, in order."""
    lengths = offsets[rows + 1] - offsets[rows]
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, dtype=np.uint8)
    # 32-bit indices where they fit (half the memory traffic of the index arrays, the bulk of the work)
    index = np.int32 if int(offsets[-1]) < 1 << 31 else np.int64
    shift = (offsets[rows] - (np.cumsum(lengths) - lengths)).astype(index)
    return np.take(data, np.repeat(shift, lengths) + np.arange(total, dtype=index))


def _write_compact(writer: Writer, rows: np.ndarray, counts: np.ndarray, k: int, unary: np.ndarray,
                   remainders: np.ndarray) -> bytes:
    write_set(writer, rows)
    write_set(writer, np.cumsum(counts).astype(np.uint64))
    writer.u8(k).u32(unary.shape[0]).fixed(unary.tobytes(), unary.shape[0])
    return writer.fixed(remainders.tobytes(), remainders.shape[0]).finish()


def _decode_compact(reader: Reader, party: int, parties: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rows, peers, offsets, positions) of a compact plan over the sum's ``parties`` (increasing)."""
    rows = read_set(reader, 1 << 64, MAX_ROWS)
    count, size = rows.shape[0], parties.shape[0]
    own = int(np.searchsorted(parties, party))
    if own >= size or int(parties[own]) != party:
        raise DecodeError("the plan's party is not a party of the sum")
    cumulative = read_set(reader, count * size + 1, MAX_ROWS).astype(np.int64)
    if cumulative.shape[0] != count or (count and cumulative[0] < 1):
        raise DecodeError("a compact plan needs one chooser count per row, each at least 1")
    counts = np.diff(cumulative, prepend=0)
    entries = int(cumulative[-1]) if count else 0
    k = reader.u8()
    if k != _compact_k(count, size, entries):
        raise DecodeError("non-canonical Rice parameter in a row plan")
    unary = np.frombuffer(reader.fixed(reader.count(1 << 31, 1)), dtype=np.uint8)
    rem_off = _row_starts((counts * k + 7) >> 3)
    raw = np.frombuffer(reader.fixed(int(rem_off[-1])), dtype=np.uint8)
    if not count:
        if unary.shape[0]:
            raise DecodeError("a plan without rows has no chooser codes")
        empty = np.zeros(0, dtype=np.int64)
        return rows, empty, np.zeros(1, dtype=np.int64), empty
    if counts.max() > size or k > 56:
        raise DecodeError("a row has more choosers than the sum has parties")
    ones = np.flatnonzero(np.unpackbits(unary).view(bool))  # as bools: numpy's fast nonzero path
    if ones.shape[0] != entries or (int(ones[-1]) >> 3) != unary.shape[0] - 1:
        raise DecodeError("the unary codes must hold one terminator per chooser and end with the last")
    starts = _row_starts(counts)
    row_byte = np.zeros(count, dtype=np.int64)
    row_byte[1:] = (ones[starts[1:-1] - 1] >> 3) + 1  # a row's code starts on the byte after the last's
    quotients = np.empty(entries, dtype=np.int64)
    np.subtract(ones[1:], ones[:-1], out=quotients[1:])  # in place: no temporaries of the entries' size
    quotients[1:] -= 1
    quotients[starts[:-1]] = ones[starts[:-1]] - 8 * row_byte
    if quotients.min() < 0:
        raise DecodeError("each row's unary code must start on a byte of its own")
    row_of = np.repeat(np.arange(count, dtype=np.int32), counts)
    remainders = np.zeros(entries, dtype=np.int64)
    if k:
        used = (counts * k) & 7  # the bits of a row's last remainder byte in use (0: all)
        tail = np.flatnonzero(used)
        if tail.size and np.any(raw[rem_off[1:][tail] - 1] & ((1 << (8 - used[tail])) - 1).astype(np.uint8)):
            raise DecodeError("row plan remainder padding must be zero")
        # Field j of row r starts at bit 8 rem_off[r] + j k = entry * k + (8 rem_off[r] - starts[r] k).
        first = np.arange(entries, dtype=np.int64)
        first *= k
        first += np.repeat(8 * rem_off[:-1] - starts[:-1] * k, counts)
        remainders = read_fields(raw, first, k).astype(np.int64)
    if (int(quotients.sum()) << k) + int(remainders.sum()) + entries > count * size:
        raise DecodeError("chooser gaps out of range")  # exact, before any int64 sum
    quotients <<= k
    quotients += remainders
    quotients += 1
    steps = np.zeros(entries + 1, dtype=np.int64)
    np.cumsum(quotients, out=steps[1:])
    del quotients, remainders
    base = steps[starts[:-1]] + 1
    indices = steps[1:]
    indices -= np.repeat(base, counts)  # each chooser's index within its row's party list
    if int(indices[starts[1:] - 1].max()) >= size:  # each row's largest index
        raise DecodeError("a chooser index is outside the sum's parties")
    small = indices.astype(np.uint16 if size <= 1 << 16 else np.int64)
    hits = small == own
    if not np.array_equal(row_of[hits], np.arange(count, dtype=np.int32)):
        raise DecodeError("every row of a plan must list its own party")
    keep = ~hits
    key, positions = small[keep], row_of[keep]
    order = np.argsort(key, kind="stable")  # by peer, rows increasing within each (radix sort for u16)
    positions = positions[order]
    per_peer = np.bincount(key, minlength=size)  # the peers in increasing index order, and their counts
    present = np.flatnonzero(per_peer)
    peers = parties[present].astype(np.int64)
    offsets = np.zeros(present.shape[0] + 1, dtype=np.int64)
    np.cumsum(per_peer[present], out=offsets[1:])
    return rows, peers, offsets, positions


def _concatenated_ranges(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(which range, index) for every index of the half-open ranges [starts[i], ends[i])."""
    lengths = ends - starts
    owner = np.repeat(np.arange(starts.shape[0]), lengths)
    offsets = np.cumsum(lengths) - lengths
    return owner, np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(offsets - starts, lengths)


def _window_ranges(keys: np.ndarray, rows: np.ndarray, position: np.ndarray, n: int, half: int
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
    """For entries (row, ring position), the [start, end) index ranges into ``keys`` (sorted row x n +
    position) of the entries of the same row within ring distance ``half`` (themselves included):
    one range, and a second for the part that wraps around the ring (empty where none does)."""
    base = rows * n
    low, high = position - half, position + half
    ranges = [(np.searchsorted(keys, base + np.maximum(low, 0), "left"),
               np.searchsorted(keys, base + np.minimum(high, n - 1), "right"))]
    wrapped_low, wrapped_high = low < 0, high >= n  # at most one (k <= n - 2)
    second_low = np.where(wrapped_low, base + n + low, np.where(wrapped_high, base, base + 1))
    second_high = np.where(wrapped_low, base + n - 1, np.where(wrapped_high, base + high - n, base))
    ranges.append((np.searchsorted(keys, second_low, "left"), np.searchsorted(keys, second_high, "right")))
    return ranges


class _RingWindow:
    """Who masks which row with whom on a sparse graph: per row, the choosers within ring distance k/2.

    The plan's (row, chooser) pairs are kept as one sorted array of row position x n + ring position,
    so a chooser's partners on a row are one or two contiguous runs of it (k <= n - 2: at most one
    side wraps around the ring).

    A party's part of the plan is derived on demand, at a cost that follows its own entries, never
    rows x partners: either from its (row, partner) pairs found by searching those runs
    (:meth:`pairs`, then a sort), or by keeping the window's entries of its rows' chooser lists in the
    sum's order (:meth:`compact_filtered`, :meth:`sharing_filtered`; ``RowPlan`` picks the one
    expected to cost less, :func:`_filter_cheaper`). Both give the same bytes."""

    def __init__(self, ring: Sequence[int], neighbours: int, positions: Mapping[int, np.ndarray]) -> None:
        self.n = len(ring)
        self.half = neighbours // 2
        self.ring = np.asarray(ring, dtype=np.int64)
        self.position = {int(party): index for index, party in enumerate(ring)}
        missing = set(positions) - set(self.position)
        if missing:
            raise InvalidParameters(f"parties {sorted(missing)[:5]} of the plan are not on the graph's ring")
        self._positions = positions  # the plan's own (not copied)
        self._keys: np.ndarray | None = None
        self._sum_indices: tuple[bytes, np.ndarray] | None = None
        # per ring position, its party's rank among the ring's ids (16 bits where they fit: numpy's
        # stable argsort is a radix sort there)
        self._ids = np.sort(self.ring)
        self._rank = np.searchsorted(self._ids, self.ring).astype(np.uint16 if self.n <= 1 << 16 else np.int64)

    @property
    def keys(self) -> np.ndarray:
        """The sorted pairs (8 bytes each), built when first searched: a plan whose parts all come from
        the chooser lists (:meth:`compact_filtered`, :meth:`sharing_filtered`) never holds them."""
        if self._keys is None:
            positions = self._positions
            rows = max((int(where.max()) + 1 for where in positions.values() if where.size), default=0)
            self._keys = _ring_keys(sorted((self.position[party], where) for party, where in positions.items()),
                                    rows, self.n)
        return self._keys

    def pairs(self, party: int, where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The party's (row, partner) pairs: for each, the row's index among the party's rows (``where``,
        their union positions) and the partner's ring position, the party itself left out. Two searches
        per row and one gather per pair: the cost follows the pairs, not rows x partners."""
        n, own = self.n, self.position[party]
        rows = where.astype(np.int64)
        position = np.full(rows.shape[0], own, dtype=np.int64)
        owners, partners = [], []
        for starts, ends in _window_ranges(self.keys, rows, position, n, self.half):
            owner, index = _concatenated_ranges(starts, np.maximum(ends, starts))
            owners.append(owner)
            partners.append(self.keys[index] % n)
        owner, partner = np.concatenate(owners), np.concatenate(partners)
        others = partner != own  # each row's window holds the party itself once
        return owner[others], partner[others]

    def sharing(self, party: int, where: np.ndarray, pairs: tuple[np.ndarray, np.ndarray] | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(peers, offsets, positions): the party's partners (increasing ids) and, for peer i,
        ``positions[offsets[i]:offsets[i + 1]]`` the increasing indices among its rows that both chose
        and mask together (one stable sort of the pairs). ``pairs``: :meth:`pairs`' answer if known."""
        owner, partner = self.pairs(party, where) if pairs is None else pairs
        # The pairs come as two runs of increasing rows (the window's unwrapped part, then the part
        # that wraps around the ring), and a partner lies in one of them for all its rows: a stable
        # sort by partner keeps each partner's rows increasing.
        rank = self._rank[partner]
        order = np.argsort(rank, kind="stable")
        peer, positions = self._ids[rank[order]], owner[order]
        firsts = np.flatnonzero(np.diff(peer)) + 1
        firsts = np.concatenate([np.zeros(min(1, peer.shape[0]), dtype=np.int64), firsts])
        offsets = np.concatenate([firsts, [peer.shape[0]]]).astype(np.int64)
        return peer[firsts], offsets, positions

    def sum_indices(self, parties: np.ndarray) -> np.ndarray:
        """Per ring position, the party's index in the sum's ``parties`` (increasing ids), or -1 where
        it is not one of them (kept for the last party list asked)."""
        key = parties.tobytes()
        if self._sum_indices is None or self._sum_indices[0] != key:
            index = np.searchsorted(parties, self.ring)
            clipped = np.minimum(index, max(0, parties.shape[0] - 1))
            present = (index < parties.shape[0]) & (parties[clipped] == self.ring) if parties.size else index < 0
            self._sum_indices = (key, np.where(present, index, -1).astype(np.int64))
        return self._sum_indices[1]

    def compact(self, party: int, where: np.ndarray, parties: np.ndarray
                ) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
        """The party's compact plan over the sum's ``parties`` (its own index in each row included):
        per row the chooser counts, the Rice parameter, the unary codes and the remainder fields.
        From the pairs straight to sorted (row, index) keys: the cost follows the pairs."""
        size, count = parties.shape[0], where.shape[0]
        own = int(np.searchsorted(parties, party))
        owner, partner = self.pairs(party, where)
        index = self.sum_indices(parties)[partner]
        if index.size and int(index.min()) < 0:
            outside = self.ring[partner[index < 0]]
            raise InvalidParameters(f"partner {int(outside.min())} is not a party of the sum")
        keys = np.empty(owner.shape[0] + count, dtype=np.int64)
        np.multiply(owner, size, out=keys[: owner.shape[0]])
        keys[: owner.shape[0]] += index
        np.multiply(np.arange(count, dtype=np.int64), size, out=keys[owner.shape[0]:])
        keys[owner.shape[0]:] += own
        keys.sort(kind="stable")  # runs of increasing rows: the stable sort merges them
        counts = np.bincount(owner, minlength=count).astype(np.int64)
        counts += 1
        keys -= np.repeat(np.arange(count, dtype=np.int64) * size, counts)  # each row's chooser indices
        k = _compact_k(count, size, keys.shape[0])
        unary, _, remainders, _ = _aligned_codes(counts, _row_gaps(counts, keys), k)
        return counts, k, unary, remainders

    def _filtered(self, party: int, where: np.ndarray, parties: np.ndarray, starts: np.ndarray,
                  index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The party's rows' chooser lists (``starts``, ``index``: per union row, its choosers' increasing
        indices in ``parties``) gathered, and which of their entries lie on its window (itself
        included): (gathered indices, kept entries' places in them, each row's start among them)."""
        n, half, own = self.n, self.half, self.position[party]
        rows = where.astype(np.int64)
        inside = np.zeros(parties.shape[0], dtype=bool)  # per index in ``parties``: on the window
        window = self.sum_indices(parties)[(own + np.arange(-half, half + 1, dtype=np.int64)) % n]
        inside[window[window >= 0]] = True  # (a ring party outside ``parties`` chose nothing: in no list)
        gathered = _gather_ranges(index, starts, rows)
        kept = np.flatnonzero(np.take(inside, gathered))
        bounds = np.zeros(rows.shape[0] + 1, dtype=np.int64)
        np.cumsum(starts[rows + 1] - starts[rows], out=bounds[1:])
        return gathered, kept, bounds

    def sharing_filtered(self, party: int, where: np.ndarray, parties: np.ndarray, starts: np.ndarray,
                         index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`sharing` from the rows' chooser lists over ``parties`` (every party of the plan among
        them): the window's entries of its rows' lists, grouped by partner with a stable (radix) sort
        of their indices -- rows stay increasing within each. Cost: the choosers of its rows."""
        gathered, kept, bounds = self._filtered(party, where, parties, starts, index)
        row = np.searchsorted(bounds, kept, "right") - 1  # each kept entry's row among the party's rows
        peer_index = np.take(gathered, kept)
        del gathered, kept
        others = peer_index != np.searchsorted(parties, party)
        peer_index, row = peer_index[others], row[others]
        order = np.argsort(peer_index, kind="stable")
        peer_index, positions = peer_index[order], row[order]
        firsts = np.flatnonzero(np.diff(peer_index)) + 1
        firsts = np.concatenate([np.zeros(min(1, peer_index.shape[0]), dtype=np.int64), firsts])
        offsets = np.concatenate([firsts, [peer_index.shape[0]]]).astype(np.int64)
        return parties[peer_index[firsts]].astype(np.int64), offsets, positions

    def compact_filtered(self, party: int, where: np.ndarray, parties: np.ndarray, starts: np.ndarray,
                         index: np.ndarray) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
        """:meth:`compact` from the rows' chooser lists (``starts``, ``index``: per union row its
        choosers' increasing indices in ``parties``): the party's rows' lists gathered and the entries
        in its window kept, already in order -- no search per row, no sort. The cost follows the
        choosers of its rows, about n / (k + 1) times its pairs (used where that is small)."""
        size, count = parties.shape[0], where.shape[0]
        gathered, kept, bounds = self._filtered(party, where, parties, starts, index)
        counts = np.diff(np.searchsorted(kept, bounds))
        indices = np.take(gathered, kept).astype(np.int64)
        del gathered, kept
        k = _compact_k(count, size, indices.shape[0])
        unary, _, remainders, _ = _aligned_codes(counts, _row_gaps(counts, indices), k)
        return counts, k, unary, remainders

    def client_bits(self, party: int, where: np.ndarray, pairs: tuple[np.ndarray, np.ndarray] | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """The bitmap form: the party's partners and itself (increasing ids), and per row a packed
        bitmap over them (numpy's big-endian bit order). ``pairs``: :meth:`pairs`' answer when the
        caller has it. Partners' columns are found in a table over the party's window (k + 1 slots);
        the bitmap is rows x columns / 8 bytes, so a caller that needs the shorter form builds it
        only where it is the shorter one (then it is under 4 bytes a pair)."""
        owner, partner = self.pairs(party, where) if pairs is None else pairs
        n, half, own, count = self.n, self.half, self.position[party], where.shape[0]
        span = 2 * half + 1
        slots = (partner - (own - half)) % n  # the window's slots, the party itself at ``half``
        present = np.zeros(span, dtype=bool)
        present[slots] = True
        present[half] = True
        used = np.flatnonzero(present)
        ids = self.ring[(own - half + used) % n]
        order = np.argsort(ids)
        columns = ids[order]
        column_of = np.empty(span, dtype=np.int64)
        column_of[used[order]] = np.arange(columns.shape[0], dtype=np.int64)
        width = 8 * ((columns.shape[0] + 7) // 8)
        member = np.zeros(count * width, dtype=bool)
        member[owner * width + column_of[slots]] = True
        member[np.arange(count, dtype=np.int64) * width + column_of[half]] = True
        return columns, np.packbits(member).reshape(count, width // 8)


_PEEL_SLICE = 1 << 16  # entries whose windows are counted at once (their searches stay in cache)


def _window_counts(keys: np.ndarray, n: int, half: int) -> np.ndarray:
    """Per entry of ``keys`` (sorted row x n + ring position, whole rows), how many other entries of its
    row lie within ring distance ``half`` of it: in slices of entries, each searched only in the part
    of ``keys`` its rows span (bounded temporaries, searches in cache-sized arrays)."""
    counts = np.empty(keys.shape[0], dtype=np.int32)
    for low in range(0, keys.shape[0], _PEEL_SLICE):
        part = keys[low : low + _PEEL_SLICE]
        rows, where = np.divmod(part, n)
        span = keys[np.searchsorted(keys, rows[0] * n) : np.searchsorted(keys, (rows[-1] + 1) * n)]
        total = np.full(part.shape[0], -1, dtype=np.int64)  # itself is in its own window
        for starts, ends in _window_ranges(span, rows, where, n, half):
            total += np.maximum(ends - starts, 0)
        counts[low : low + part.shape[0]] = total
    return counts


_NEAREST_ONLY = 8  # up to this many partners needed, the peel looks at each pair's nearest ones only


def _starved(keys: np.ndarray, n: int, half: int, need: int) -> np.ndarray:
    """Per entry of ``keys`` (sorted row x n + ring position, whole rows): whether fewer than ``need``
    other entries of its row lie within ring distance ``half`` of it.

    For a small ``need`` only each entry's ``need`` nearest entries on either side (cyclically within
    its row) are looked at: the b-th next entry is within reach only if the nearer ones are, and no
    entry is within reach on both sides (2 half < n). O(need) passes, in slices of whole rows; a
    larger ``need`` counts the windows with searches (:func:`_window_counts`)."""
    if need > _NEAREST_ONLY:
        return _window_counts(keys, n, half) < need
    starved = np.zeros(keys.shape[0], dtype=bool)
    if need <= 0:
        return starved
    low = 0
    while low < keys.shape[0]:
        high = min(keys.shape[0], low + _PEEL_SLICE)
        high = int(np.searchsorted(keys, (keys[high - 1] // n + 1) * n))  # to the end of that row
        rows, where = np.divmod(keys[low:high], n)
        size = high - low
        change = np.ones(size, dtype=bool)
        np.not_equal(rows[1:], rows[:-1], out=change[1:])
        firsts = np.flatnonzero(change)
        row = np.cumsum(change) - 1
        start = firsts[row]
        length = np.diff(np.append(firsts, size))[row]
        at = np.arange(size, dtype=np.int64) - start  # each entry's index in its row
        found = np.zeros(size, dtype=np.int64)
        for step in range(1, need + 1):
            valid = step < length  # a row of length L has L - 1 other entries
            after = where[start + (at + step) % length]
            before = where[start + (at - step) % length]
            found += valid & ((after - where) % n <= half)
            found += valid & ((where - before) % n <= half)
        starved[low:high] = found < need
        low = high
    return starved


def _ring_keys(entries: list[tuple[int, np.ndarray]], rows: int, n: int) -> np.ndarray:
    """The sorted keys row x n + ring position of each (ring position, its rows' positions) in
    ``entries`` (increasing ring positions, distinct rows each): a counting sort by row -- the parties
    taken in ring order leave each row's entries in ring order -- O(entries), no sort."""
    counts = np.zeros(rows, dtype=np.int64)
    for _, where in entries:
        counts[where] += 1
    cursor = np.zeros(rows, dtype=np.int64)
    np.cumsum(counts[:-1], out=cursor[1:])
    keys = np.empty(int(counts.sum()), dtype=np.int64)
    del counts
    for at, where in entries:
        keys[cursor[where]] = where * n + at
        cursor[where] += 1
    return keys


def sparse_row_peel(chosen: Mapping[int, np.ndarray], ring: Sequence[int], neighbours: int,
                    min_partners: int, union: np.ndarray | None = None) -> dict[int, np.ndarray]:
    """Each party's rows that it can upload on a sparse graph: a (party, row) pair is kept while the
    party has at least ``min_partners`` ring neighbours (distance <= k/2) that chose and kept the row;
    dropping a pair can starve another, so the rule runs to its fixed point (the largest such set).
    ``chosen``: party -> sorted row ids; ``union``: sorted distinct row ids holding all of them, if
    the caller has them (found here otherwise).

    The pairs are one sorted array of union position x n + ring position (8 bytes a pair, built by
    :func:`_ring_keys`); the first pass checks every pair (:func:`_starved`: its nearest partners
    for a small ``min_partners``), later passes only the rows that lost a pair. The answer is slices
    of one array."""
    n, half = len(ring), neighbours // 2
    position = {int(party): index for index, party in enumerate(ring)}
    parties = [party for party in chosen if chosen[party].shape[0]]
    if not parties:
        return {party: np.zeros(0, dtype=np.uint64) for party in chosen}
    if union is None:  # sorted in place, repeats dropped (numpy's unique hashes: slower here)
        every = np.concatenate([np.asarray(chosen[party], dtype=np.uint64) for party in parties])
        every.sort()
        distinct = np.ones(every.shape[0], dtype=bool)
        np.not_equal(every[1:], every[:-1], out=distinct[1:])
        union = every[distinct]
        del every, distinct
    union = np.asarray(union, dtype=np.uint64)
    entries = []
    for at, party in sorted((position[party], party) for party in parties):
        where = np.searchsorted(union, chosen[party])
        if not _positions_of(union, np.asarray(chosen[party], dtype=np.uint64), where):
            raise InvalidParameters(f"party {party} chose rows outside the union")
        entries.append((at, where))
    keys = _ring_keys(entries, union.shape[0], n)
    del entries
    check, index = keys, None  # the entries counted in this pass (whole rows), and where they sit in keys
    while True:
        starved = np.flatnonzero(_starved(check, n, half, min_partners))
        if not starved.size:
            break
        dirty = np.unique(check[starved] // n)  # the rows that lose a pair
        keep = np.ones(keys.shape[0], dtype=bool)
        keep[starved if index is None else index[starved]] = False
        keys = keys[keep]
        del keep, check
        _, index = _concatenated_ranges(np.searchsorted(keys, dirty * n), np.searchsorted(keys, (dirty + 1) * n))
        check = keys[index]
        if not check.shape[0]:
            break
    del check, index
    ring_at = keys % n
    # grouped by ring position, rows increasing within each (a stable sort; radix for 16-bit values)
    order = np.argsort(ring_at.astype(np.uint16) if n <= 1 << 16 else ring_at, kind="stable")
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(ring_at, minlength=n), out=offsets[1:])
    del ring_at
    rows = np.empty(keys.shape[0], dtype=np.uint64)
    for low in range(0, keys.shape[0], _PEEL_SLICE * 16):  # bounded temporaries
        rows[low : low + _PEEL_SLICE * 16] = union[keys[order[low : low + _PEEL_SLICE * 16]] // n]
    del order, keys
    bounds = offsets.tolist()
    kept: dict[int, np.ndarray] = {}
    for party in sorted(chosen):
        slot = position.get(int(party))
        kept[party] = rows[bounds[slot] : bounds[slot + 1]] if slot is not None else rows[:0]
    return kept


def rows_in_use(chosen: Mapping[int, np.ndarray], union: np.ndarray) -> np.ndarray:
    """The rows of ``union`` (sorted, distinct) that some party in ``chosen`` chose (each party's rows
    sorted, all within ``union``): one search per party's rows, no sort of all of them."""
    used = np.zeros(union.shape[0], dtype=bool)
    for rows in chosen.values():
        used[np.searchsorted(union, rows)] = True
    return union[used]
