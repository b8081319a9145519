"""Wire format: canonical round trips; untrusted bytes raise DecodeError and nothing else."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedprivacy.encoding import MAGIC, ProtocolCode, Reader, Writer, domain_tag
from fedprivacy.errors import DecodeError
from fedprivacy.hazmat.field import P61, Modulus
from fedprivacy.secagg import SecAggConfig
from fedprivacy.secagg.messages import (
    CIPHERTEXT_BYTES,
    AdvertiseKeys,
    KeyBroadcast,
    MaskedInput,
    PackedCiphertexts,
    PackedShares,
    PeerKeys,
    RoutedShares,
    ShareKeys,
    UnmaskRequest,
    UnmaskResponse,
    decode_message,
)

from .helpers import config

ids = st.lists(st.integers(1, 2**32 - 1), max_size=6, unique=True).map(sorted).map(tuple)
key = st.binary(min_size=32, max_size=32)
ciphertext = st.binary(min_size=CIPHERTEXT_BYTES, max_size=CIPHERTEXT_BYTES)
limbs = st.tuples(*[st.integers(0, P61 - 1)] * 5)


@st.composite
def messages(draw):
    kind = draw(st.integers(1, 8))
    party = draw(st.integers(0, 2**32 - 1))
    if kind == 8:  # a jointly signed key broadcast (type 17): partner keys and a signature per entry
        signature = st.binary(min_size=64, max_size=64)
        entries = tuple(PeerKeys(i, draw(key), draw(key), draw(signature), draw(key), draw(key)) for i in draw(ids))
        return KeyBroadcast(party, entries, True, True)
    if kind == 1:
        return AdvertiseKeys(party, draw(key), draw(key))
    if kind == 2:
        return KeyBroadcast(party, tuple(PeerKeys(i, draw(key), draw(key)) for i in draw(ids)))
    if kind in (3, 4):
        cls = ShareKeys if kind == 3 else RoutedShares
        return cls(party, tuple((i, draw(ciphertext)) for i in draw(ids)))
    if kind == 5:
        modulus = draw(st.sampled_from(list(Modulus)))
        high = {Modulus.U32: 2**32 - 1, Modulus.U64: 2**64 - 1, Modulus.P61: P61 - 1}[modulus]
        values = draw(st.lists(st.integers(0, high), min_size=1, max_size=8))
        return MaskedInput(party, modulus, np.array(values, dtype=np.uint32 if modulus is Modulus.U32 else np.uint64))
    if kind == 6:
        both = draw(ids)
        split = draw(st.integers(0, len(both)))
        return UnmaskRequest(party, both[:split], both[split:])
    return UnmaskResponse(party, tuple((i, draw(limbs)) for i in draw(ids)), tuple((i, draw(limbs)) for i in draw(ids)))


def _same(a, b):
    if isinstance(a, MaskedInput):
        return a.sender == b.sender and a.modulus == b.modulus and a.vector.tolist() == b.vector.tolist()
    return a == b


@given(messages())
def test_round_trip_is_canonical(message):
    data = message.to_bytes()
    decoded = decode_message(data)
    assert _same(decoded, message)
    assert decoded.to_bytes() == data


@given(messages(), st.data())
def test_mutated_bytes_raise_only_decode_error(message, data):
    raw = bytearray(message.to_bytes())
    action = data.draw(st.sampled_from(["flip", "truncate", "extend"]))
    if action == "flip":
        index = data.draw(st.integers(0, len(raw) - 1))
        raw[index] ^= data.draw(st.integers(1, 255))
    elif action == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        raw += data.draw(st.binary(min_size=1, max_size=9))
    try:
        decoded = decode_message(bytes(raw))
    except DecodeError:
        return
    assert decoded.to_bytes() == bytes(raw)  # whatever decodes is canonical


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_decode_error(raw):
    for candidate in (raw, MAGIC + b"\x01\x01" + raw):
        try:
            decode_message(candidate)
        except DecodeError:
            pass


def test_non_canonical_forms_are_rejected():
    request = UnmaskRequest(1, (2, 3), ()).to_bytes()
    unsorted = request.replace(bytes.fromhex("0000000200000003"), bytes.fromhex("0000000300000002"))
    with pytest.raises(DecodeError, match="increasing"):
        decode_message(unsorted)
    with pytest.raises(DecodeError, match="trailing"):
        decode_message(request + b"\x00")
    with pytest.raises(DecodeError, match="version"):
        decode_message(request[:4] + b"\x02" + request[5:])
    with pytest.raises(DecodeError, match="protocol"):
        decode_message(request[:5] + b"\x02" + request[6:])
    masked = MaskedInput(1, Modulus.P61, np.array([P61 - 1], dtype=np.uint64)).to_bytes()
    with pytest.raises(DecodeError, match="prime"):
        decode_message(masked[:-8] + (P61).to_bytes(8, "little"))
    with pytest.raises(DecodeError):
        decode_message("not bytes")  # type: ignore[arg-type]


def test_strided_or_typed_memoryviews_are_read_as_bytes():
    data = UnmaskRequest(1, (2, 3), (4,)).to_bytes()
    assert decode_message(memoryview(data)) == decode_message(data)
    doubled = bytes(b for byte in data for b in (byte, 0))
    assert decode_message(memoryview(doubled)[::2]) == decode_message(data)
    for junk in (memoryview(doubled)[::2], memoryview(np.zeros(5, dtype=np.uint32))):
        try:
            SecAggConfig.decode(junk)
        except DecodeError:
            pass


def test_huge_counts_do_not_allocate():
    header = Writer(ProtocolCode.SECAGG, 2).u32(1).u32(999_999).finish()
    with pytest.raises(DecodeError, match="truncated"):
        decode_message(header)


def test_config_round_trip_and_digest():
    cfg = config(range(1, 6), threshold=3, round_index=9)
    again = SecAggConfig.decode(cfg.encode())
    assert again == cfg and again.digest == cfg.digest
    other = config(range(1, 6), threshold=4, round_index=9)
    assert other.digest != cfg.digest
    with pytest.raises(DecodeError):
        SecAggConfig.decode(cfg.encode()[:-1])


def test_domain_tags_are_unambiguous():
    assert domain_tag("ab", "c") != domain_tag("a", "bc")
    assert domain_tag(1) != domain_tag("\x00" * 7 + "\x01")


def test_reader_rejects_wrong_magic():
    with pytest.raises(DecodeError, match="magic"):
        Reader(b"XXXX\x01\x01\x01", ProtocolCode.SECAGG)


@given(st.integers(0, 2**32 - 1), st.lists(st.tuples(st.integers(0, 2**32 - 1), ciphertext), max_size=5, unique_by=lambda e: e[0]),
       st.lists(st.tuples(st.integers(0, 2**32 - 1), limbs), max_size=5, unique_by=lambda e: e[0]))
def test_share_lists_keep_the_entry_by_entry_layout(party, routed, shares):
    """Routed shares and unmasking responses are encoded and read in one step per list; the bytes
    are exactly the entry-by-entry layout of the spec (u32 id then the fixed-size entry, by id)."""
    routed, shares = tuple(sorted(routed)), tuple(sorted(shares))
    expected = Writer(ProtocolCode.SECAGG, 4).u32(party).u32(len(routed))
    for other, entry in routed:
        expected.u32(other).fixed(entry, CIPHERTEXT_BYTES)
    assert RoutedShares(party, routed).to_bytes() == expected.finish()
    assert decode_message(expected.finish()) == RoutedShares(party, routed)
    expected = Writer(ProtocolCode.SECAGG, 7).u32(party)
    for entries in (shares, shares[:1]):
        expected.u32(len(entries))
        for owner, values in entries:
            expected.u32(owner)
            for value in values:
                expected.u64(value)
    response = UnmaskResponse(party, shares, shares[:1])
    assert response.to_bytes() == expected.finish()
    assert decode_message(expected.finish()) == response


@given(st.integers(0, 2**32 - 1), st.lists(st.tuples(st.integers(0, 2**32 - 1), ciphertext), max_size=5, unique_by=lambda e: e[0]),
       st.lists(st.tuples(st.integers(0, 2**32 - 1), limbs), max_size=5, unique_by=lambda e: e[0]))
def test_decoded_share_lists_are_arrays_equal_to_their_pairs_and_encode_to_the_same_bytes(party, routed, shares):
    """The decoder reads a list into arrays in one step (what the server uses); the packed list equals,
    hashes and iterates like the tuple of pairs, and encodes back to exactly the bytes it came from."""
    routed, shares = tuple(sorted(routed)), tuple(sorted(shares))
    for kind in (ShareKeys, RoutedShares):
        data = kind(party, routed).to_bytes()
        decoded = decode_message(data)
        packed = decoded.ciphertexts
        assert isinstance(packed, PackedCiphertexts) and packed == routed and tuple(packed) == routed
        assert hash(decoded) == hash(kind(party, routed)) and packed.parties.tolist() == [p for p, _ in routed]
        assert decoded.to_bytes() == data and not packed.ciphertexts.flags.writeable
    data = UnmaskResponse(party, shares, shares[::-1][:2][::-1]).to_bytes()
    decoded = decode_message(data)
    assert isinstance(decoded.seed_shares, PackedShares) and decoded.seed_shares == shares
    assert decoded.seed_shares.limbs.shape == (len(shares), 5) and decoded.seed_shares.owners.tolist() == [o for o, _ in shares]
    assert decoded.to_bytes() == data and decoded == UnmaskResponse(party, shares, shares[::-1][:2][::-1])


def test_packed_lists_keep_the_decoders_checks():
    entry = (7).to_bytes(4, "big") + bytes(CIPHERTEXT_BYTES)
    for kind in (3, 4):
        body = Writer(ProtocolCode.SECAGG, kind).u32(1).u32(2).fixed(entry + entry, 2 * len(entry)).finish()
        with pytest.raises(DecodeError, match="strictly increasing"):
            decode_message(body)  # a repeated party
    owner = (3).to_bytes(4, "big") + bytes(40)
    body = Writer(ProtocolCode.SECAGG, 7).u32(1).u32(2).fixed(owner + owner, 88).u32(0).finish()
    with pytest.raises(DecodeError, match="strictly increasing"):
        decode_message(body)


def test_share_limbs_at_or_above_the_prime_are_rejected():
    good = UnmaskResponse(1, ((2, (1, 2, 3, 4, P61 - 1)),), ()).to_bytes()
    bad = good.replace((P61 - 1).to_bytes(8, "big"), P61.to_bytes(8, "big"))
    assert bad != good
    with pytest.raises(DecodeError, match="out of range"):
        decode_message(bad)
