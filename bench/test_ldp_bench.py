"""pytest-benchmark suite for randomized response (run with `make bench`)."""

from __future__ import annotations

import numpy as np

from fedprivacy.ldp import PermanentMemo, RRParameters, randomize

PARAMS = RRParameters.preset(2)
RNG = np.random.default_rng(0)  # public synthetic ids
UNION = np.unique(RNG.integers(0, 1 << 61, 1_000_000, dtype=np.uint64))
REAL = UNION[RNG.choice(UNION.shape[0], 300, replace=False)]


def test_first_round_union_1e6(benchmark):
    empty = PermanentMemo.empty("bench", PARAMS)
    benchmark(randomize, PARAMS, empty, UNION, REAL)


def test_later_round_union_1e6(benchmark):
    memo = randomize(PARAMS, PermanentMemo.empty("bench", PARAMS), UNION, REAL).memo
    benchmark(randomize, PARAMS, memo, UNION, REAL)
