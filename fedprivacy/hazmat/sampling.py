"""Exact Bernoulli sampling from integers for differential privacy.

A probability is an exact rational a/b (``fractions.Fraction``) with b <= 2^63. A coin is one
uniform integer U in [0, b) compared with a: P[U < a] = a/b exactly, no floating point involved.

Randomness layout (relied on by the test vectors and the enumeration proofs): every coin consumes
one 64-bit little-endian word of the random source, in the order the coins are requested.

* b = 2^k: U is the word's top k bits (no rejection).
* otherwise: with L = floor(2^64 / b) * b, a word W >= L is rejected (probability < 2^-1 even in the
  worst case, < b / 2^64 in general); the rejected positions are redrawn, in order, from fresh words
  until none remain; U = W mod b.

Several coins may use different probabilities that share one denominator (``thresholds``), which is
how a vector of per-element probabilities (p1 for members, p2 for the others) is drawn in one pass.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from math import gcd
from numbers import Rational

import numpy as np

from ..errors import InvalidParameters
from .prg import RandomSource

__all__ = ["MAX_DENOMINATOR", "as_probability", "common_denominator", "uniform_below", "bernoulli"]

MAX_DENOMINATOR = 1 << 63


def as_probability(value: object, name: str = "probability") -> Fraction:
    """An exact probability in [0, 1] with denominator <= 2^63 (floats are taken exactly, never rounded)."""
    if isinstance(value, bool):
        raise InvalidParameters(f"{name} must be a number, got {value!r}")
    try:
        if isinstance(value, str):
            fraction = Fraction(value.strip())
        elif isinstance(value, (Rational, float, Decimal)):
            fraction = Fraction(value)
        else:
            raise TypeError(value)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        raise InvalidParameters(f"{name} must be a rational number in [0, 1], got {value!r}") from None
    if not 0 <= fraction <= 1:
        raise InvalidParameters(f"{name} must be in [0, 1], got {value!r}")
    if fraction.denominator > MAX_DENOMINATOR:
        raise InvalidParameters(
            f"{name}={value!r} needs a denominator above 2^63; give it as a Fraction with a smaller denominator"
        )
    return fraction


def common_denominator(probabilities: list[Fraction]) -> int:
    denominator = 1
    for p in probabilities:
        denominator = _lcm(denominator, p.denominator)
    if denominator > MAX_DENOMINATOR:
        raise InvalidParameters("the probabilities' common denominator exceeds 2^63")
    return denominator


def _lcm(a: int, b: int) -> int:
    return a // gcd(a, b) * b


def _words(count: int, random_bytes: RandomSource) -> np.ndarray:
    return np.frombuffer(random_bytes(8 * count), dtype="<u8").astype(np.uint64)


def uniform_below(bound: int, count: int, random_bytes: RandomSource) -> np.ndarray:
    """``count`` independent uniform integers in [0, bound), bound <= 2^63, as uint64."""
    if not 1 <= bound <= MAX_DENOMINATOR:
        raise InvalidParameters("bound must be in [1, 2^63]")
    words = _words(count, random_bytes)
    if bound & (bound - 1) == 0:
        bits = bound.bit_length() - 1
        return words >> np.uint64(64 - bits) if bits else np.zeros(count, dtype=np.uint64)
    limit = np.uint64(((1 << 64) // bound) * bound)
    rejected = np.flatnonzero(words >= limit)
    while rejected.size:
        fresh = _words(rejected.size, random_bytes)
        words[rejected] = fresh
        rejected = rejected[fresh >= limit]
    return words % np.uint64(bound)


def bernoulli(thresholds: np.ndarray, denominator: int, random_bytes: RandomSource) -> np.ndarray:
    """Boolean coins: coin i is True with probability thresholds[i] / denominator (exactly)."""
    thresholds = np.asarray(thresholds, dtype=np.uint64)
    if thresholds.size and int(thresholds.max()) > denominator:
        raise InvalidParameters("a threshold exceeds the denominator")
    return uniform_below(denominator, thresholds.shape[0], random_bytes) < thresholds
