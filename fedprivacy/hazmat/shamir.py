"""Vectorised t-of-n Shamir secret sharing over the prime field p = 2^61 - 1.

Secrets are byte strings cut into 56-bit limbs (7 bytes, big-endian), so every limb is a field
element; each limb is shared with an independent uniformly random polynomial of degree t - 1.
Shares are evaluated at caller-chosen distinct non-zero x-coordinates (party ids) with numpy Horner
steps, and reconstruction uses Lagrange coefficients at 0 cached per responder set, applied to
exactly t shares.

With many coefficients (t - 1 >= 64, the full graph of a large round) the evaluation is a matrix
product instead: the powers x^1..x^(t-1) of the share points (computed once per point set and
cached), cut into 21-bit limbs, times the coefficients cut the same way, in float64. Every product
of two limbs is below 2^42 and every dot product sums at most 2^11 of them, so all partial sums are
integers below 2^53 and exact in double precision whatever the summation order; the limb products
are then recombined mod p with shifts. The result is the same residue as Horner's rule (tested,
and checked against an integer product the first time each point set is used).

Any t - 1 shares of a limb are uniformly distributed and independent of the secret (the polynomial's
t - 1 random coefficients act as a one-time pad); ``proofs/secagg`` checks this by enumeration over a
small field with :func:`reference_share`, and the tests check the numpy path against the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import ClassVar

import numpy as np

from .field import P61, add_p61, mul_p61, reduce_p61_inplace
from .prg import RandomSource, random_field_elements

__all__ = [
    "LIMB_BYTES",
    "limbs_for",
    "bytes_to_limbs",
    "limbs_to_bytes",
    "share",
    "reconstruct",
    "reconstruct_many",
    "lagrange_at_zero",
    "lagrange_at_zero_many",
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
    if threshold - 1 >= _MATRIX_MIN_DEGREE:
        return add_p61(_PowerTable.of(tuple(int(x) for x in xs), threshold - 1).times(coefficients), secrets[None, :])
    x_column = np.asarray(xs, dtype=np.uint64)[:, None]
    acc = np.zeros((len(xs), limb_count), dtype=np.uint64)
    for degree in range(threshold - 2, -1, -1):  # Horner, highest coefficient first
        acc = add_p61(mul_p61(acc, x_column), coefficients[degree][None, :])
    return add_p61(mul_p61(acc, x_column), secrets[None, :])


_MATRIX_MIN_DEGREE = 64
_LIMB_BITS = 21
_LIMB_MASK = np.uint64((1 << _LIMB_BITS) - 1)
_MAX_TERMS = 1 << (53 - 2 * _LIMB_BITS)  # dot products of at most this many limb products stay exact


def _limbs_f64(values: np.ndarray) -> list[np.ndarray]:
    """Residues below 2^63 as three float64 arrays of 21-bit limbs (low first)."""
    return [((values >> np.uint64(_LIMB_BITS * i)) & _LIMB_MASK).astype(np.float64) for i in range(3)]


def _times_power_of_two(values: np.ndarray, exponent: int) -> np.ndarray:
    """values * 2^exponent mod p for values in [0, p]: a rotation within 61 bits (2^61 = 1 mod p)."""
    shift = exponent % 61
    if shift == 0:
        return values.copy()
    return ((values << np.uint64(shift)) & np.uint64(P61)) | (values >> np.uint64(61 - shift))


class _PowerTable:
    """x^1..x^degree mod p for a tuple of points, as float64 limb matrices (cached: the full graph
    shares to the same points for every owner)."""

    _cache: ClassVar[dict[tuple[tuple[int, ...], int], _PowerTable]] = {}
    _CACHE_SIZE = 2

    def __init__(self, xs: tuple[int, ...], degree: int) -> None:
        powers = np.empty((len(xs), degree), dtype=np.uint64)
        column = np.asarray(xs, dtype=np.uint64)
        powers[:, 0] = column
        for k in range(1, degree):
            powers[:, k] = mul_p61(powers[:, k - 1], column)
        self.powers = powers
        # Rows: (limb i of x^k) for i = 0, 1, 2, stacked; columns: the coefficient index.
        self.limbs = np.vstack(_limbs_f64(powers))
        self.checked = False

    @classmethod
    def of(cls, xs: tuple[int, ...], degree: int) -> _PowerTable:
        key = (xs, degree)
        table = cls._cache.get(key)
        if table is None:
            table = cls(xs, degree)
            while len(cls._cache) >= cls._CACHE_SIZE:
                cls._cache.pop(next(iter(cls._cache)))
            cls._cache[key] = table
        return table

    def times(self, coefficients: np.ndarray) -> np.ndarray:
        """powers @ coefficients mod p (coefficients: residues, shape (degree, L))."""
        points, degree = self.powers.shape
        limb_count = coefficients.shape[1]
        right = np.hstack(_limbs_f64(coefficients))  # (degree, 3L): limb j of coefficient c in column j*L + c
        total = np.zeros((points, limb_count), dtype=np.uint64)
        for start in range(0, degree, _MAX_TERMS):
            stop = min(degree, start + _MAX_TERMS)
            product = (self.limbs[:, start:stop] @ right[start:stop]).astype(np.uint64)  # exact, < 2^53
            for shift in range(5):  # sum of limb_i(x^k) * limb_j(c) with i + j = shift, times 2^(21 shift)
                part = np.zeros((points, limb_count), dtype=np.uint64)
                for i in range(max(0, shift - 2), min(2, shift) + 1):
                    j = shift - i
                    part += product[i * points : (i + 1) * points, j * limb_count : (j + 1) * limb_count]
                reduce_p61_inplace(part)  # three terms below 2^53: no overflow before the fold
                total = add_p61(total, _times_power_of_two(part, _LIMB_BITS * shift))
        if not self.checked:  # first use of this point set: the float path must equal integer arithmetic
            self.checked = True
            if not np.array_equal(total, _integer_product(self.powers, coefficients)):
                raise ArithmeticError("inexact floating-point matrix product; Shamir sharing refused")
        return total


def _integer_product(powers: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """powers @ coefficients mod p with integer arithmetic only (the reference for the float path)."""
    acc = np.zeros((powers.shape[0], coefficients.shape[1]), dtype=np.uint64)
    for k in range(powers.shape[1]):
        acc = add_p61(acc, mul_p61(powers[:, k : k + 1], coefficients[k][None, :]))
    return acc


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


_LOW_32 = np.uint64(0xFFFFFFFF)
_TWO_32 = np.uint64(1 << 32)
_BATCH_WORDS = 1 << 20  # bounds the temporaries of the batched paths (a few times this many words)


def _sum_p61(values: np.ndarray, axis: int) -> np.ndarray:
    """Sum of residues (below 2^61) along ``axis`` mod p: 32-bit halves summed exactly (fewer than
    2^31 terms), recombined with 2^32 * high + low."""
    values = np.asarray(values, dtype=np.uint64)
    low = np.bitwise_and(values, _LOW_32).sum(axis=axis, dtype=np.uint64)
    high = np.right_shift(values, np.uint64(32)).sum(axis=axis, dtype=np.uint64)
    return add_p61(mul_p61(reduce_p61_inplace(high), _TWO_32), reduce_p61_inplace(low))


def _product_p61(values: np.ndarray) -> np.ndarray:
    """Product of residues along the last axis mod p (pairwise, log depth)."""
    values = np.asarray(values, dtype=np.uint64)
    while values.shape[-1] > 1:
        if values.shape[-1] % 2:
            values = np.concatenate([values, np.ones(values.shape[:-1] + (1,), dtype=np.uint64)], axis=-1)
        values = mul_p61(values[..., 0::2], values[..., 1::2])
    return values[..., 0]


def _inverse_p61(values: np.ndarray) -> np.ndarray:
    """values^(p - 2) mod p elementwise (Fermat; values non-zero), square and multiply."""
    result = np.ones(values.shape, dtype=np.uint64)
    base = np.asarray(values, dtype=np.uint64).copy()
    exponent = P61 - 2
    while exponent:
        if exponent & 1:
            result = mul_p61(result, base)
        exponent >>= 1
        if exponent:
            base = mul_p61(base, base)
    return result


def lagrange_at_zero_many(xs: np.ndarray) -> np.ndarray:
    """Lagrange coefficients at 0 for many point sets at once: ``xs`` (m, t) of distinct non-zero
    points below p per row; row i of the result equals ``lagrange_at_zero(tuple(xs[i]))``.

    w_i = prod_j x_j / (x_i * prod_{j != i} (x_j - x_i)): the differences as (m, t, t) residues, in
    chunks of rows, and one batched inversion."""
    xs = np.asarray(xs, dtype=np.uint64)
    count, t = xs.shape
    if t == 1:
        return np.ones((count, 1), dtype=np.uint64)
    out = np.empty((count, t), dtype=np.uint64)
    step = max(1, _BATCH_WORDS // (t * t))
    diagonal = np.eye(t, dtype=bool)
    for first in range(0, count, step):
        points = xs[first : first + step]
        differences = points[:, None, :] + np.uint64(P61) - points[:, :, None]  # [i, j] = x_j - x_i + p
        reduce_p61_inplace(differences)
        differences[:, diagonal] = points  # the diagonal carries x_i: the product is x_i * prod (x_j - x_i)
        denominators = _product_p61(differences)
        numerator = _product_p61(points)
        out[first : first + step] = mul_p61(_inverse_p61(denominators), numerator[:, None])
    return out


def reconstruct_many(shares: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Many secrets at once, each from exactly t shares: ``shares`` (m, t, L) residues, row i of
    ``xs`` (m, t) the points of secret i's shares; returns (m, L), row i equal to
    ``reconstruct(shares[i], tuple(xs[i]))``. Point sets that repeat are interpolated once."""
    shares = np.asarray(shares, dtype=np.uint64)
    xs = np.asarray(xs, dtype=np.uint64)
    count, t = xs.shape
    if shares.shape[:2] != (count, t) or shares.ndim != 3:
        raise ValueError("need t shares of every secret and one point per share")
    if count == 0:
        return np.zeros((0, shares.shape[2]), dtype=np.uint64)
    index: dict[bytes, int] = {}  # each distinct point set once (rows compared as bytes)
    which = np.fromiter((index.setdefault(row.tobytes(), len(index)) for row in np.ascontiguousarray(xs)),
                        dtype=np.intp, count=count)
    sets = xs[np.unique(which, return_index=True)[1]]
    if t > 1 and bool((np.diff(np.sort(sets, axis=1), axis=1) == 0).any()):
        raise ValueError("need one distinct x-coordinate per share row")
    weights = lagrange_at_zero_many(sets)
    out = np.empty((count, shares.shape[2]), dtype=np.uint64)
    step = max(1, _BATCH_WORDS // max(1, t * shares.shape[2]))
    for first in range(0, count, step):
        chosen = weights[which.reshape(-1)[first : first + step]]  # (m', t)
        products = mul_p61(shares[first : first + step], chosen[:, :, None])
        out[first : first + step] = _sum_p61(products, axis=1)
    return out


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
