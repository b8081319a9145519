"""The primitives every module reaches through hazmat: the AES PRF, the CTR keystream into a buffer,
the X25519 public-key check and the one randomness source type, against pycryptodome."""

from __future__ import annotations

import numpy as np
from Crypto.Cipher import AES
from Crypto.Protocol.DH import import_x25519_public_key
from hypothesis import given
from hypothesis import strategies as st

from fedprivacy.hazmat import identity, kex, prg, randomness
from fedprivacy.hazmat.field import Modulus
from fedprivacy.hazmat.kex import is_usable_public_key, public_key
from fedprivacy.hazmat.prf import BLOCK_BYTES, OUTPUT_SLACK, aes_blocks, aes_blocks_into, prf_u64
from fedprivacy.hazmat.prg import ctr_into, keystream_words

keys = st.binary(min_size=16, max_size=16)
block_data = st.integers(min_value=0, max_value=64).flatmap(
    lambda blocks: st.binary(min_size=BLOCK_BYTES * blocks, max_size=BLOCK_BYTES * blocks)
)
u64 = st.integers(min_value=0, max_value=(1 << 64) - 1)


@given(keys, block_data)
def test_aes_blocks_is_aes_ecb(key, data):
    expected = AES.new(key, AES.MODE_ECB).encrypt(data)
    assert aes_blocks(key, data) == expected
    out = np.full(len(data) + OUTPUT_SLACK, 0xAA, dtype=np.uint8)
    aes_blocks_into(key, np.frombuffer(data, dtype=np.uint8), out)
    assert out[: len(data)].tobytes() == expected


@given(keys, st.lists(u64, max_size=40), st.integers(min_value=0, max_value=255))
def test_prf_u64_is_the_first_word_of_aes_of_id_and_usage(key, values, usage):
    cipher = AES.new(key, AES.MODE_ECB)
    expected = [
        int.from_bytes(cipher.encrypt(x.to_bytes(8, "little") + usage.to_bytes(8, "little"))[:8], "little")
        for x in values
    ]
    got = prf_u64(key, np.array(values, dtype=np.uint64), usage)
    assert got.dtype == np.uint64
    assert [int(v) for v in got] == expected


def test_prf_u64_known_answer():
    # AES-128 of FIPS-197 appendix C.1: key 00..0f, block 00 11 .. ff, first 8 output bytes little-endian.
    key = bytes(range(16))
    block = bytes.fromhex("00112233445566778899aabbccddeeff")
    x, usage = int.from_bytes(block[:8], "little"), int.from_bytes(block[8:], "little")
    expected = int.from_bytes(bytes.fromhex("69c4e0d86a7b0430d8cdb78070b4c55a")[:8], "little")
    assert int(prf_u64(key, np.array([x], dtype=np.uint64), usage)[0]) == expected


@given(keys, st.binary(max_size=300))
def test_ctr_into_is_aes_ctr_from_the_zero_counter(key, data):
    out = bytearray(len(data))
    ctr_into(key, data, memoryview(out))
    assert bytes(out) == AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=0).encrypt(data)


def test_ctr_into_zeros_is_the_mask_keystream():
    key = bytes(range(16))
    out = np.empty(100, dtype=np.uint64)
    ctr_into(key, bytes(800), memoryview(out).cast("B"))
    assert np.array_equal(out, keystream_words(key, 100, Modulus.U64))


_P = (1 << 255) - 19
# RFC 7748 section 6.1 / the X25519 low-order points: u = 0, 1, p - 1 and the two points of order 8,
# plus the non-canonical encodings p and p + 1 of 0 and 1; each also with the ignored top bit set.
_LOW_ORDER_U = [
    0,
    1,
    325606250916557431795983626356110631294008115727848805560023387167927233504,
    39382357235489614581723060781553021112529911719440698176882885853963445705823,
    _P - 1,
    _P,
    _P + 1,
]
_LOW_ORDER = [(u | top).to_bytes(32, "little") for u in _LOW_ORDER_U for top in (0, 1 << 255)]


def _pycryptodome_accepts(raw: bytes) -> bool:
    try:
        import_x25519_public_key(raw)
    except ValueError:
        return False
    return True


def test_low_order_public_keys_are_not_usable():
    for raw in _LOW_ORDER:
        assert not _pycryptodome_accepts(raw)
        assert not is_usable_public_key(raw)


@given(st.binary(min_size=32, max_size=32))
def test_usable_public_key_agrees_with_pycryptodome(raw):
    assert is_usable_public_key(raw) == _pycryptodome_accepts(raw)


@given(st.binary(min_size=32, max_size=32))
def test_every_real_public_key_is_usable(private_raw):
    assert is_usable_public_key(public_key(private_raw))


def test_usable_public_key_refuses_other_lengths():
    for size in (0, 31, 33, 64):
        assert not is_usable_public_key(bytes([9]) + bytes(size - 1) if size else b"")


def test_one_randomness_source_type():
    assert prg.RandomSource is randomness.RandomSource
    assert kex.RandomSource is randomness.RandomSource
    assert identity.RandomSource is randomness.RandomSource
    assert prg.system_random_bytes is randomness.system_random_bytes


def test_system_random_bytes_lengths_and_freshness():
    for size in (0, 1, 32, 4096, 4097, 1 << 20):  # both the OS path and the bulk keystream path
        first, second = randomness.system_random_bytes(size), randomness.system_random_bytes(size)
        assert len(first) == size == len(second)
        if size >= 16:
            assert first != second
