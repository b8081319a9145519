"""Vectorised t-of-n Shamir secret sharing over the prime field p = 2^61 - 1.

Secrets are byte strings cut into 56-bit limbs (7 bytes, big-endian), so every limb is a field
element; each limb is shared with an independent uniformly random polynomial of degree t - 1.
Shares are evaluated at caller-chosen distinct non-zero x-coordinates (party ids) with numpy Horner
steps, and reconstruction uses Lagrange coefficients at 0 cached per responder set, applied to
exactly t shares.

Any t - 1 shares of a limb are uniformly distributed and independent of the secret (the polynomial's
t - 1 random coefficients act as a one-time pad); ``proofs/secagg`` checks this by enumeration over a
small field with :func:`reference_share`, and the tests check the numpy path against the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from .field import P61, add_p61, mul_p61
from .prg import RandomSource, random_field_elements

__all__ = [
    "LIMB_BYTES",
    "limbs_for",
    "bytes_to_limbs",
    "limbs_to_bytes",
    "share",
    "reconstruct",
    "lagrange_at_zero",
    "reference_share",
    "reference_reconstruct",
]

LIMB_BYTES = 7
_LIMB_LIMIT = 1 << (8 * LIMB_BYTES)


def limbs_for(secret_bytes: int) -> int:
    return -(-secret_bytes // LIMB_BYTES)


def bytes_to_limbs(data: bytes) -> np.ndarray:
    """Big-endian 56-bit limbs of ``data`` (zero padded at the end to a multiple of 7 bytes)."""
    count = limbs_for(len(data))
    padded = data + bytes(count * LIMB_BYTES - len(data))
    return np.array(
        [int.from_bytes(padded[i * LIMB_BYTES : (i + 1) * LIMB_BYTES], "big") for i in range(count)],
        dtype=np.uint64,
    )


def limbs_to_bytes(limbs: Sequence[int] | np.ndarray, length: int) -> bytes:
    """Inverse of :func:`bytes_to_limbs`; ``ValueError`` if a limb or the padding is out of range."""
    out = bytearray()
    for limb in limbs:
        value = int(limb)
        if value >= _LIMB_LIMIT:
            raise ValueError("limb out of range")
        out += value.to_bytes(LIMB_BYTES, "big")
    if any(out[length:]):
        raise ValueError("non-zero padding")
    return bytes(out[:length])


def share(secrets: np.ndarray, xs: Sequence[int], threshold: int, random_bytes: RandomSource) -> np.ndarray:
    """Shares of every limb in ``secrets`` (shape (L,)) at each x in ``xs``: array of shape (len(xs), L)."""
    secrets = np.asarray(secrets, dtype=np.uint64)
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    if len(set(xs)) != len(xs) or any(x <= 0 or x >= P61 for x in xs):
        raise ValueError("x-coordinates must be distinct and in [1, p)")
    limb_count = secrets.shape[0]
    coefficients = random_field_elements((threshold - 1) * limb_count, random_bytes).reshape(threshold - 1, limb_count)
    x_column = np.asarray(xs, dtype=np.uint64)[:, None]
    acc = np.zeros((len(xs), limb_count), dtype=np.uint64)
    for degree in range(threshold - 2, -1, -1):  # Horner, highest coefficient first
        acc = add_p61(mul_p61(acc, x_column), coefficients[degree][None, :])
    return add_p61(mul_p61(acc, x_column), secrets[None, :])


@lru_cache(maxsize=4096)
def lagrange_at_zero(xs: tuple[int, ...]) -> np.ndarray:
    """Lagrange basis coefficients at 0 for the points ``xs`` (cached per responder set)."""
    coefficients = []
    for i, xi in enumerate(xs):
        numerator = 1
        denominator = 1
        for j, xj in enumerate(xs):
            if j != i:
                numerator = numerator * xj % P61
                denominator = denominator * (xj - xi) % P61
        coefficients.append(numerator * pow(denominator, P61 - 2, P61) % P61)
    result = np.array(coefficients, dtype=np.uint64)
    result.setflags(write=False)
    return result


def reconstruct(shares: np.ndarray, xs: tuple[int, ...]) -> np.ndarray:
    """Secrets from exactly t shares: ``shares`` has shape (t, M) (row i at x = xs[i])."""
    shares = np.asarray(shares, dtype=np.uint64)
    if shares.shape[0] != len(xs) or len(set(xs)) != len(xs):
        raise ValueError("need one distinct x-coordinate per share row")
    weights = lagrange_at_zero(tuple(int(x) for x in xs))
    acc = np.zeros(shares.shape[1:], dtype=np.uint64)
    for row, weight in zip(shares, weights):
        acc = add_p61(acc, mul_p61(row, weight))
    return acc


# Pure-integer reference over any prime field: the specification the numpy path must match,
# and the tool the proofs use to enumerate small fields exhaustively.


def reference_share(secret: int, coefficients: Sequence[int], xs: Sequence[int], prime: int) -> list[int]:
    """f(x) = secret + c_1 x + ... + c_{t-1} x^{t-1} mod prime, at each x."""
    out = []
    for x in xs:
        value = 0
        for c in reversed([secret, *coefficients]):
            value = (value * x + c) % prime
        out.append(value)
    return out


def reference_reconstruct(points: Sequence[tuple[int, int]], prime: int) -> int:
    """f(0) from (x, f(x)) points by Lagrange interpolation mod prime."""
    total = 0
    for i, (xi, yi) in enumerate(points):
        numerator, denominator = 1, 1
        for j, (xj, _) in enumerate(points):
            if j != i:
                numerator = numerator * xj % prime
                denominator = denominator * (xj - xi) % prime
        total = (total + yi * numerator * pow(denominator, prime - 2, prime)) % prime
    return total
