"""Primitives against independent implementations (pycryptodome, Python integers)."""

from __future__ import annotations

import numpy as np
import pytest
from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF as CryptodomeHKDF
from hypothesis import given
from hypothesis import strategies as st

from fedprivacy.errors import InvalidCiphertext, InvalidParameters
from fedprivacy.hazmat import aead, shamir
from fedprivacy.hazmat.field import P61, Modulus, add_inplace, add_p61, dtype_of, modulus_value, mul_p61, sub_inplace
from fedprivacy.hazmat.kex import KeyAgreement, agree, generate_keypair, hkdf
from fedprivacy.hazmat.prg import (
    DeterministicRandomness,
    MaskExpander,
    keystream_words,
    random_field_elements,
    random_permutation,
)

residues = st.integers(min_value=0, max_value=P61 - 1)


@given(st.lists(st.tuples(residues, residues), min_size=1, max_size=50))
def test_mul_and_add_p61_match_python_integers(pairs):
    a = np.array([x for x, _ in pairs], dtype=np.uint64)
    b = np.array([y for _, y in pairs], dtype=np.uint64)
    assert [int(v) for v in mul_p61(a, b)] == [x * y % P61 for x, y in pairs]
    assert [int(v) for v in add_p61(a, b)] == [(x + y) % P61 for x, y in pairs]


def test_mul_p61_extremes():
    edge = np.array([0, 1, 2, P61 - 1, P61 - 2, 1 << 60, (1 << 31) - 1, 1 << 31], dtype=np.uint64)
    grid_a, grid_b = np.meshgrid(edge, edge)
    got = mul_p61(grid_a.ravel(), grid_b.ravel())
    assert [int(v) for v in got] == [int(x) * int(y) % P61 for x, y in zip(grid_a.ravel(), grid_b.ravel())]


@given(st.lists(st.tuples(residues, st.integers(0, P61)), min_size=1, max_size=30))
def test_p61_inplace_add_sub_accept_p_as_zero(pairs):
    acc = np.array([x for x, _ in pairs], dtype=np.uint64)
    vec = np.array([y for _, y in pairs], dtype=np.uint64)
    added = acc.copy()
    add_inplace(added, vec, Modulus.P61)
    assert [int(v) for v in added] == [(x + y) % P61 for x, y in pairs]
    subtracted = acc.copy()
    sub_inplace(subtracted, vec, Modulus.P61)
    assert [int(v) for v in subtracted] == [(x - y) % P61 for x, y in pairs]


@pytest.mark.parametrize("modulus", list(Modulus))
@pytest.mark.parametrize("count", [1, 7, 1000, (1 << 15) + 3])
def test_keystream_matches_pycryptodome_aes_ctr(modulus, count):
    key = bytes(range(16))
    word = 4 if modulus is Modulus.U32 else 8
    reference = AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=bytes(16)).encrypt(bytes(count * word))
    expected = np.frombuffer(reference, dtype="<u4" if word == 4 else "<u8")
    if modulus is Modulus.P61:
        expected = expected & np.uint64(P61)
    assert np.array_equal(keystream_words(key, count, modulus), expected)


@pytest.mark.parametrize("modulus", list(Modulus))
def test_mask_add_then_subtract_is_identity(modulus):
    expander = MaskExpander(modulus, chunk_words=64)
    original = keystream_words(b"x" * 16, 1000, modulus)
    if modulus is Modulus.P61:
        original = original % np.uint64(P61)
    vector = original.copy()
    expander.apply(vector, b"k" * 16)
    assert not np.array_equal(vector, original)
    expander.apply(vector, b"k" * 16, subtract=True)
    assert np.array_equal(vector, original)


def test_aead_matches_pycryptodome_and_is_opaque():
    key, nonce, ad = b"K" * 16, bytes(12), b"associated"
    ciphertext = aead.encrypt(key, nonce, b"plaintext", ad)
    reference = AES.new(key, AES.MODE_GCM, nonce=nonce)
    reference.update(ad)
    body, tag = reference.encrypt_and_digest(b"plaintext")
    assert ciphertext == body + tag
    assert aead.decrypt(key, nonce, ciphertext, ad) == b"plaintext"
    for bad in (ciphertext[:-1] + bytes([ciphertext[-1] ^ 1]), ciphertext[:5]):
        with pytest.raises(InvalidCiphertext) as info:
            aead.decrypt(key, nonce, bad, ad)
        assert str(info.value) == "invalid ciphertext"
    with pytest.raises(InvalidCiphertext):
        aead.decrypt(key, nonce, ciphertext, b"other")


def test_hkdf_matches_pycryptodome():
    ours = hkdf(b"secret", b"salt", b"info", 16)
    assert ours == CryptodomeHKDF(b"secret", 16, b"salt", SHA256, context=b"info")


def test_x25519_agreement_is_symmetric_and_rejects_low_order_points():
    rand = DeterministicRandomness("kex")
    a_private, a_public = generate_keypair(rand)
    b_private, b_public = generate_keypair(rand)
    assert agree(a_private, b_public) == agree(b_private, a_public) == KeyAgreement(a_private).agree(b_public)
    with pytest.raises(InvalidParameters):
        agree(a_private, bytes(32))
    with pytest.raises(InvalidParameters):
        KeyAgreement(a_private).agree(b"short")


def test_random_field_elements_reject_p_and_are_deterministic_when_seeded():
    calls = iter([b"\xff" * 8 + b"\x01" + bytes(7), b"\x05" + bytes(7)])
    values = random_field_elements(2, lambda n: next(calls)[:n] if n == 16 else next(calls)[:n])
    assert [int(v) for v in values] == [5, 1]
    assert np.array_equal(
        random_field_elements(10, DeterministicRandomness("s")), random_field_elements(10, DeterministicRandomness("s"))
    )


def test_random_permutation_is_a_permutation():
    perm = random_permutation(1000, b"p" * 16)
    assert sorted(perm.tolist()) == list(range(1000))
    assert perm.tolist() != list(range(1000))


@given(
    secret=st.binary(min_size=32, max_size=32),
    threshold=st.integers(1, 6),
    extra=st.integers(0, 4),
    seed=st.binary(min_size=1, max_size=8),
)
def test_shamir_numpy_path_matches_reference_and_reconstructs(secret, threshold, extra, seed):
    rand = DeterministicRandomness(seed)
    xs = [3 * i + 1 for i in range(threshold + extra)]
    limbs = shamir.bytes_to_limbs(secret)
    shares = shamir.share(limbs, xs, threshold, rand)
    # The same coefficients through the pure-integer reference give the same shares.
    replay = DeterministicRandomness(seed)
    coefficients = random_field_elements((threshold - 1) * len(limbs), replay).reshape(threshold - 1, len(limbs))
    for limb_index, limb in enumerate(limbs):
        expected = shamir.reference_share(int(limb), [int(c) for c in coefficients[:, limb_index]], xs, P61)
        assert [int(v) for v in shares[:, limb_index]] == expected
    chosen = tuple(xs[extra:])  # any t of them
    rebuilt = shamir.reconstruct(shares[extra : extra + threshold], chosen[:threshold])
    assert shamir.limbs_to_bytes(rebuilt, 32) == secret


def test_limbs_reject_out_of_range():
    with pytest.raises(ValueError):
        shamir.limbs_to_bytes([1 << 56, 0, 0, 0, 0], 32)
    with pytest.raises(ValueError):
        shamir.limbs_to_bytes([0, 0, 0, 0, 1], 32)  # padding byte set


@pytest.mark.parametrize("max_terms", [None, 50])
def test_shamir_matrix_path_matches_reference(monkeypatch, max_terms):
    """Many coefficients (t - 1 >= 64) go through the limb matrix product: the same shares as the
    pure-integer reference, for small and near-p points, over one or several exact chunks."""
    if max_terms is not None:
        monkeypatch.setattr(shamir, "_MAX_TERMS", max_terms)
    monkeypatch.setattr(shamir._PowerTable, "_cache", {})
    limbs = np.array([P61 - 1, 0, 1, (1 << 56) - 1, 12345], dtype=np.uint64)
    for xs in ([*range(1, 131)], [P61 - 1 - 3 * i for i in range(130)]):
        threshold = 120
        shares = shamir.share(limbs, xs, threshold, DeterministicRandomness(b"matrix"))
        again = shamir.share(limbs, xs, threshold, DeterministicRandomness(b"matrix"))  # cached powers
        assert np.array_equal(shares, again)
        coefficients = random_field_elements((threshold - 1) * len(limbs), DeterministicRandomness(b"matrix"))
        coefficients = coefficients.reshape(threshold - 1, len(limbs))
        for limb_index, limb in enumerate(limbs):
            expected = shamir.reference_share(int(limb), [int(c) for c in coefficients[:, limb_index]], xs, P61)
            assert [int(v) for v in shares[:, limb_index]] == expected
        rebuilt = shamir.reconstruct(shares[7 : 7 + threshold], tuple(xs[7 : 7 + threshold]))
        assert rebuilt.tolist() == limbs.tolist()


@pytest.mark.parametrize("modulus", list(Modulus))
def test_apply_many_equals_masks_applied_one_by_one(modulus):
    """The lazy sum (folds between batches of masks mod p) gives the residues of adding each mask
    on its own: many masks of both signs, a length that is not a multiple of the chunk."""
    rng = np.random.default_rng(5)  # public test data
    high = min(modulus_value(modulus), 1 << 63)
    start = rng.integers(0, high, 70_001, dtype=np.uint64).astype(dtype_of(modulus))
    masks = [(bytes([i]) * 16, bool(i % 3 == 0)) for i in range(41)]
    one_by_one = start.copy()
    expander = MaskExpander(modulus, chunk_words=1 << 12)
    for key, subtract in masks:
        expander.apply(one_by_one, key, subtract)
    together = start.copy()
    MaskExpander(modulus, chunk_words=1 << 12).apply_many(together, masks, batch=17)
    assert np.array_equal(together, one_by_one)
