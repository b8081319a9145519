"""Rice-coded id sets (fedprivacy/gapcode.py) and the compact row plan (secagg type 18): round trips,
one encoding per value, and refusals that raise only DecodeError."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedprivacy.encoding import ProtocolCode, Reader, Writer
from fedprivacy.errors import DecodeError, InvalidParameters
from fedprivacy.gapcode import read_fields, read_set, rice_parameter, write_set
from fedprivacy.secagg.rows import ClientRowPlan, RowPlan

ids = st.lists(st.integers(0, 2**64 - 1), unique=True, max_size=300).map(sorted)


def _encode(values) -> bytes:
    return write_set(Writer(ProtocolCode.SUBMODEL, 99), np.array(values, dtype=np.uint64)).finish()


def _decode(data: bytes, limit: int = 1 << 64) -> np.ndarray:
    reader = Reader(data, ProtocolCode.SUBMODEL)
    reader.u8()
    values = read_set(reader, limit, 1 << 20)
    reader.done()
    return values


@given(ids)
def test_id_sets_round_trip(values):
    data = _encode(values)
    assert _decode(data).tolist() == values and _encode(_decode(data)) == data


@given(ids, st.data())
def test_mutated_id_sets_decode_canonically_or_raise_decode_error(values, data):
    raw = bytearray(_encode(values))
    position = data.draw(st.integers(7, max(7, len(raw) - 1)))
    if position < len(raw):
        raw[position] ^= data.draw(st.integers(1, 255))
    try:
        decoded = _decode(bytes(raw))
    except DecodeError:
        return
    assert _encode(decoded) == bytes(raw)  # whatever decodes is the one encoding of its set


def test_each_set_has_exactly_one_encoding():
    values = list(range(0, 16_000, 16))
    data = bytearray(_encode(values))
    k = rice_parameter(len(values), values[-1])
    assert data[11] == k == 3
    for other in (k - 1, k + 1):  # the same set under another Rice parameter
        writer = Writer(ProtocolCode.SUBMODEL, 99).u32(len(values))
        gaps = np.diff(np.array(values), prepend=-1) - 1
        q = gaps >> other
        unary = np.zeros(int(np.sum(q + 1)), dtype=np.uint8)
        unary[np.cumsum(q + 1) - 1] = 1
        packed = np.packbits(unary)
        writer.u8(other).u32(packed.shape[0]).fixed(packed.tobytes(), packed.shape[0])
        bits = np.array([[(g >> (other - 1 - b)) & 1 for b in range(other)] for g in gaps], dtype=np.uint8)
        remainder = np.packbits(bits.reshape(-1)).tobytes()
        forged = writer.fixed(remainder, len(remainder)).finish()
        with pytest.raises(DecodeError, match="non-canonical"):
            _decode(forged)
    with pytest.raises(DecodeError, match="out of range"):
        _decode(bytes(data), limit=values[-1])  # the caller's bound
    odd = bytearray(_encode(values[:-1]))  # 999 remainders of 3 bits: 3 padding bits in the last byte
    assert _decode(bytes(odd)).tolist() == values[:-1]
    odd[-1] |= 1
    with pytest.raises(DecodeError, match="padding"):
        _decode(bytes(odd))


def _random_plan(parties: int, union: int, per: int, seed: int) -> tuple[RowPlan, list[int]]:
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(10**6, union, replace=False)).astype(np.uint64)
    chosen = {p: np.sort(rng.choice(rows, min(per, union), replace=False)) for p in range(1, parties + 1)}
    members = list(range(1, parties + 1)) + [parties + 5, parties + 9]  # sum parties that chose nothing
    return RowPlan(rows, 4, chosen), members


@pytest.mark.parametrize("shape", [(2, 3, 3), (5, 40, 1), (20, 500, 100), (60, 300, 200)])
def test_compact_plans_from_the_server_match_the_generic_encoder_and_decode_to_the_same_sharing(shape):
    plan, members = _random_plan(*shape, seed=sum(shape))
    for party in plan.chosen:
        mine = plan.for_client(party)
        data = mine.encode(members)  # the server's path: byte ranges of the union rows' codes
        explicit = ClientRowPlan(party, mine.width, mine.rows, mine.shared)
        assert explicit.encode(members) == data  # the generic path gives the same bytes
        decoded = ClientRowPlan.decode(data, members)
        assert decoded.rows.tolist() == mine.rows.tolist()
        assert {p: q.tolist() for p, q in decoded.sharing()} == {p: q.tolist() for p, q in mine.sharing()}
        assert decoded.encode(members) == data and decoded.encode() == mine.encode()


def test_compact_plans_refuse_what_the_form_cannot_say():
    plan, members = _random_plan(6, 30, 12, seed=4)
    data = plan.for_client(1).encode(members)
    with pytest.raises(DecodeError):
        ClientRowPlan.decode(data)  # needs the sum's parties
    with pytest.raises(DecodeError):
        ClientRowPlan.decode(data, [m for m in members if m != 1])  # its own party is not in the list
    with pytest.raises(DecodeError):
        ClientRowPlan.decode(data, members[:3])  # indices beyond a shorter list, or another k
    with pytest.raises(InvalidParameters, match="not a party of the sum"):
        plan.for_client(2).encode([1, 3, 4])
    for cut in (1, 2, 5):
        with pytest.raises(DecodeError):
            ClientRowPlan.decode(data[:-cut], members)


@given(st.data())
def test_mutated_compact_plans_decode_canonically_or_raise_decode_error(data):
    plan, members = _random_plan(8, 40, 15, seed=data.draw(st.integers(0, 3)))
    raw = bytearray(plan.for_client(data.draw(st.integers(1, 8))).encode(members))
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(7, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    try:
        decoded = ClientRowPlan.decode(bytes(raw), members)
    except DecodeError:
        return
    assert decoded.encode(members) == bytes(raw)


def _fields_bit_by_bit(raw: np.ndarray, starts: list[int], k: int) -> list[int]:
    bits = np.unpackbits(raw).tolist()
    return [int("".join(map(str, bits[start:start + k])), 2) for start in starts]


@given(st.integers(1, 56), st.binary(min_size=8, max_size=64), st.data())
def test_read_fields_reads_every_width_at_every_bit_offset(k, data, draw):
    """The 16-, 32- and 64-bit read paths agree with reading the bits one by one, up to the last field."""
    raw = np.frombuffer(data, dtype=np.uint8)
    last = 8 * raw.shape[0] - k
    starts = draw.draw(st.lists(st.integers(0, last), max_size=40)) + [0, last]
    got = read_fields(raw, np.array(starts, dtype=np.int64), k)
    assert got.dtype == np.uint64
    assert got.tolist() == _fields_bit_by_bit(raw, starts, k)
