"""Exact output distributions of the production randomizer, by enumerating its randomness.

With probabilities whose common denominator is 2^k, every coin reads the top k bits of one 64-bit
word (fedprivacy.hazmat.sampling). Feeding ``randomize`` every combination of those bits, each with
weight 2^-k per coin, yields the exact distribution of what it outputs, as fractions.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable
from fractions import Fraction

from fedprivacy.hazmat.sampling import common_denominator
from fedprivacy.ldp import PermanentMemo, RRParameters, randomize


def _bits(params: RRParameters) -> int:
    denominator = common_denominator([params.p1, params.p2, params.p3, params.p4])
    assert denominator & (denominator - 1) == 0, "enumeration needs a power-of-two denominator"
    return denominator.bit_length() - 1


def _feeder(outcomes: tuple[int, ...], bits: int) -> Callable[[int], bytes]:
    data = b"".join(((u << (64 - bits)) if bits else 0).to_bytes(8, "little") for u in outcomes)
    position = 0

    def random_bytes(size: int) -> bytes:
        nonlocal position
        chunk = data[position : position + size]
        assert len(chunk) == size, "the randomizer asked for more coins than enumerated"
        position += size
        return chunk

    return random_bytes


def report_distribution(params: RRParameters, union: list[int], real: list[int], rounds: int) -> dict[tuple, Fraction]:
    """P[(S''_1, ..., S''_rounds)] for one client asked the same union ``rounds`` times, memo kept."""
    bits = _bits(params)
    coins = len(union) + rounds * len(union)  # permanent coins once, instantaneous coins every round
    weight = Fraction(1, 2 ** (bits * coins))
    distribution: Counter = Counter()
    for outcomes in itertools.product(range(2**bits), repeat=coins):
        feed = _feeder(outcomes, bits)
        memo = PermanentMemo.empty("enumerated", params)
        history = []
        for _ in range(rounds):
            result = randomize(params, memo, union, real, random_bytes=feed)
            memo = result.memo
            history.append(tuple(int(i) for i in result.chosen_ids))
        distribution[tuple(history)] += weight
    return dict(distribution)


def max_log_ratio(first: dict[tuple, Fraction], second: dict[tuple, Fraction]) -> float:
    """max over outputs of |ln P1(o) / P2(o)| (inf if some output is possible under one only)."""
    worst = 0.0
    for output in set(first) | set(second):
        a, b = first.get(output, Fraction(0)), second.get(output, Fraction(0))
        if a == 0 or b == 0:
            return math.inf
        worst = max(worst, abs(math.log(a / b)))
    return worst
