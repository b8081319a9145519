"""A scalar, pure-Python reference of the discrete Gaussian sampler (one sample, word by word).

It follows the algorithm and the randomness layout of protocols/ddp/spec.md §3 with Python integers
and ``fractions`` only, one element at a time. For one sample the production sampler's passes
reduce to exactly this sequence of words, so ``tests/test_ddp.py`` checks that both return the same
value from the same bytes; the proofs then reason about this reference.
"""

from __future__ import annotations

from fractions import Fraction
from math import isqrt

from fedprivacy.hazmat.prg import RandomSource

_TWO64 = 1 << 64


class Words:
    def __init__(self, random_bytes: RandomSource) -> None:
        self.random_bytes = random_bytes

    def word(self) -> int:
        return int.from_bytes(self.random_bytes(8), "little")

    def below(self, bound: int) -> int:
        excess = _TWO64 % bound
        w = self.word()
        while excess and w >= _TWO64 - excess:
            w = self.word()
        return w % bound


def exp_expansion(k: int, bits: int = 128) -> int:
    """floor(exp(-k) 2^bits) from the alternating series, with its remainder bounded rigorously."""
    scale = 1 << bits
    terms = 4 * k + 200
    total = Fraction(0)
    term = Fraction(1)
    for j in range(terms):
        total += term
        term = term * (-k) / (j + 1)
    # |remainder| <= |next term| (the terms decrease in magnitude once j > k)
    low, high = (total - abs(term)) * scale, (total + abs(term)) * scale
    floor_low, floor_high = low.numerator // low.denominator, high.numerator // high.denominator
    assert floor_low == floor_high, "series not long enough"
    return floor_low


_TABLE = [exp_expansion(k) for k in range(1, 89)]


def geometric(words: Words) -> int:
    u1 = words.word()
    his = [v >> 64 for v in _TABLE]
    if u1 in his:
        u2 = words.word()
        value = sum(1 for v in _TABLE if v > (u1 << 64) + u2)
    else:
        value = sum(1 for h in his if h > u1)
    assert value < 88
    return value


def bernoulli_exp_fraction(words: Words, r: int, d: int) -> bool:
    if r == 0:
        return True
    k = 1
    while True:
        success = words.below(d) < r
        if k >= 2:
            success = (words.below(k) == 0) and success
        if not success:
            return k % 2 == 1
        k += 1


def bernoulli_exp(words: Words, n: int, d: int) -> bool:
    whole, rest = divmod(n, d)
    if whole > 0 and geometric(words) < whole:
        return False
    return bernoulli_exp_fraction(words, rest, d)


def discrete_laplace(words: Words, t: int) -> int:
    while True:
        u = words.below(t)
        if not bernoulli_exp(words, u, t):
            continue
        sign = words.below(2)
        x = u + t * geometric(words)
        if sign == 1 and x == 0:
            continue
        return -x if sign else x


def discrete_gaussian(random_bytes: RandomSource, variance: int) -> int:
    words = Words(random_bytes)
    t = isqrt(variance) + 1
    while True:
        y = discrete_laplace(words, t)
        a = abs(abs(y) * t - variance)
        c, e = divmod(a, t)
        if (bernoulli_exp(words, c * c, 2 * variance) and bernoulli_exp(words, c * e, variance * t)
                and bernoulli_exp(words, e * e, 2 * variance * t * t)):
            return y
