"""Check for claim psu/2 (see claim-2-loss-and-exactness.md)."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedprivacy.hazmat.field import P61
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.psu import PSUParameters, PSUServer, UnionDecodeFailure, encode_reference, encode_set, peel, run_psu_round
from fedprivacy.policy import weakened_policy

from .check_union_only import q

SESSION = b"fedprivacy proof psu exactness!!"


@pytest.mark.parametrize("p", [5, 7])
@pytest.mark.parametrize("holders", [1, 2, 3, 4])
def test_an_id_vanishes_with_probability_q_m(p, holders):
    params = PSUParameters(4, 2, SESSION, hashes=3, cells_per_id=3.0)
    other = encode_reference(params, [2], [1], p)  # a second id held once with weight 1
    vanished = 0
    for weights in itertools.product(range(1, p), repeat=holders):
        sketch = list(other)
        for w in weights:
            sketch = [(a + b) % p for a, b in zip(sketch, encode_reference(params, [1], [w], p))]
        vanished += tuple(sketch) == other
    assert Fraction(vanished, (p - 1) ** holders) == q(holders, p)


def _sum(params, sketches):
    total = np.zeros(params.vector_length, dtype=object)
    for sketch in sketches:
        total = (total + sketch.astype(object)) % P61
    return total.astype(np.uint64)


@settings(max_examples=40)
@given(
    st.lists(st.lists(st.integers(0, 2**40), max_size=30), min_size=2, max_size=6),
    st.sampled_from([2**40 + 1, P61]),
    st.floats(0.3, 2.0),
)
def test_decoder_is_exact_or_fails_loudly(sets, universe, bound_factor):
    bound = max(1, int(bound_factor * len({i for s in sets for i in s})))
    params = PSUParameters(universe, bound, SESSION)
    summed = _sum(params, [encode_set(params, s, random_bytes=DeterministicRandomness(f"{k}")) for k, s in enumerate(sets)])
    result = peel(params, summed)
    union = sorted({i for s in sets for i in s})
    if result.success:
        assert result.ids.tolist() == union
    else:
        with pytest.raises(UnionDecodeFailure):
            PSUServer(params).decode(summed)
    assert run_psu_round(dict(enumerate(sets, start=1)), params, max_attempts=8, policy=weakened_policy()).union.tolist() == union
