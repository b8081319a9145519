"""Private set union: validation, encoding, peeling, reruns, dropouts, the Bloom variant."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedprivacy.errors import DecodeError, InvalidParameters
from fedprivacy.hazmat.field import P61, Modulus
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.psu import (
    BloomParameters,
    PSUClient,
    PSUParameters,
    PSUServer,
    UnionDecodeFailure,
    decode_bloom,
    encode_bloom,
    encode_reference,
    encode_set,
    peel,
    run_psu_round,
)
from fedprivacy.psu.iblt import batch_inverse, nonzero_weights
from fedprivacy.secagg import DropoutSchedule, SecAggStep, SecAggConfig

from .helpers import PROTOCOL_POLICY

SESSION = b"fedprivacy psu tests session 001"


def _plain_sum(params, sketches):
    total = np.zeros(params.vector_length, dtype=object)
    for sketch in sketches:
        total = (total + sketch.astype(object)) % P61
    return total.astype(np.uint64)


@pytest.mark.parametrize("bad", [[1.5], ["a"], [-1], [143534], [True]])
def test_bad_ids_are_refused_before_anything_is_sent(bad):
    params = PSUParameters(143534, 10, SESSION)
    with pytest.raises(InvalidParameters):
        PSUClient(params, np.array(bad, dtype=object) if bad != [1.5] else np.array(bad))


def test_parameters_validation_and_wire_round_trip():
    params = PSUParameters(10**9, 1000, SESSION)
    assert params.hashes == 4 and params.fields == 2 and params.cells % 4 == 0
    assert PSUParameters.decode(params.encode()) == params
    big = PSUParameters((1 << 61) - 1, 200_000, SESSION)
    assert big.hashes == 3 and big.fields == 3
    assert params.retry().position_key != params.position_key and params.retry().cells > params.cells
    for kwargs in (dict(universe=0), dict(universe=1 << 61), dict(union_bound=0), dict(hashes=2)):
        args = dict(universe=100, union_bound=10, session_id=SESSION) | kwargs
        with pytest.raises(InvalidParameters):
            PSUParameters(**args)
    with pytest.raises(DecodeError):
        PSUParameters.decode(params.encode()[:-1])


@pytest.mark.parametrize("universe", [143534, (1 << 61) - 1])
def test_fast_encoder_matches_the_reference(universe):
    params = PSUParameters(universe, 50, SESSION)
    ids = [3, 17, 17, 99, 140000, 5]
    distinct = sorted(set(ids))
    weights = nonzero_weights(len(distinct), DeterministicRandomness("w"))
    fast = encode_set(params, ids, random_bytes=DeterministicRandomness("w"))
    reference = encode_reference(params, distinct, [int(w) for w in weights], P61)
    assert [int(v) for v in fast] == list(reference)


def test_weights_are_non_zero_field_elements():
    feed = iter([bytes(8), (P61).to_bytes(8, "little"), (5).to_bytes(8, "little"), (9).to_bytes(8, "little")])
    weights = nonzero_weights(2, lambda n: b"".join(next(feed) for _ in range(n // 8)))
    assert [int(w) for w in weights] == [5, 9]


def test_batch_inverse():
    values = nonzero_weights(1000, DeterministicRandomness("inv"))
    inverse = batch_inverse(values)
    assert all(int(a) * int(b) % P61 == 1 for a, b in zip(values, inverse))


@settings(max_examples=30)
@given(st.lists(st.lists(st.integers(0, 10**6 - 1), max_size=40), min_size=1, max_size=8), st.booleans())
def test_peeling_returns_exactly_the_union_or_a_detected_failure(sets, large_universe):
    universe = (1 << 61) - 1 if large_universe else 10**6
    bound = max(1, sum(len(s) for s in sets))
    params = PSUParameters(universe, bound, SESSION)
    sketches = [encode_set(params, s, random_bytes=DeterministicRandomness(f"{i}{s}")) for i, s in enumerate(sets)]
    result = peel(params, _plain_sum(params, sketches))
    union = sorted({i for s in sets for i in s})
    if result.success:
        assert result.ids.tolist() == union
    else:  # a stopping set: the protocol reruns; never a silent partial union
        with pytest.raises(UnionDecodeFailure):
            PSUServer(params).decode(_plain_sum(params, sketches))


def test_corrupted_sum_is_a_failure_not_a_union():
    params = PSUParameters(10**6, 20, SESSION)
    summed = _plain_sum(params, [encode_set(params, [1, 2, 3])])
    summed[0] = (int(summed[0]) + 1) % P61
    with pytest.raises(UnionDecodeFailure):
        PSUServer(params).decode(summed)


def test_too_small_table_reruns_with_a_larger_one():
    rng = np.random.default_rng(0)
    sets = {p: rng.integers(0, 10**9, 60, dtype=np.uint64) for p in range(1, 6)}
    params = PSUParameters(10**9, 20, SESSION)  # far below the real union of ~300 ids
    result = run_psu_round(sets, params, max_attempts=6, policy=PROTOCOL_POLICY)
    assert result.attempts > 1
    assert result.union.tolist() == sorted({int(i) for s in sets.values() for i in s})
    with pytest.raises(UnionDecodeFailure):
        run_psu_round(sets, params, max_attempts=1, policy=PROTOCOL_POLICY)


def test_dropout_semantics():
    sets = {1: [10, 11], 2: [20], 3: [30], 4: [40], 5: [50, 10], 6: [60]}
    params = PSUParameters(1000, 20, SESSION)

    def config(p):
        return SecAggConfig(tuple(sets), p.vector_length, Modulus.P61, 5, 3, SESSION)

    schedule = DropoutSchedule({2: SecAggStep.SHARE, 3: SecAggStep.INPUT, 4: SecAggStep.UNMASK})
    result = run_psu_round(sets, params, config, schedule, policy=PROTOCOL_POLICY)
    assert result.contributors == {1, 4, 5, 6}
    assert result.union.tolist() == [10, 11, 40, 50, 60]  # 4 vanished after its sketch arrived: included


@settings(max_examples=15)
@given(
    st.dictionaries(st.integers(1, 8), st.lists(st.integers(0, 5000), max_size=15), min_size=4, max_size=8),
    st.data(),
)
def test_union_of_contributors_under_any_dropout_schedule(sets, data):
    ids = sorted(sets)
    n = len(ids)
    threshold = max(2, n // 2)
    drops = data.draw(st.dictionaries(st.sampled_from(ids), st.sampled_from(list(SecAggStep)), max_size=n - threshold))
    params = PSUParameters(5001, max(1, sum(len(s) for s in sets.values())), SESSION)

    def config(p):
        return SecAggConfig(tuple(ids), p.vector_length, Modulus.P61, n - 1, threshold, SESSION)

    result = run_psu_round(sets, params, config, DropoutSchedule(drops), max_attempts=5, policy=PROTOCOL_POLICY)
    contributors = {p for p in ids if drops.get(p) in (None, SecAggStep.UNMASK)}
    assert result.contributors == contributors
    assert result.union.tolist() == sorted({i for p in contributors for i in sets[p]})


def test_bloom_variant_candidates_partitions_and_scan():
    universe = 200_000
    sets = [[5, 150, 199_999], [150, 70_000], [12_345]]
    union = sorted({i for s in sets for i in s})
    for partitions in (0, 50):
        params = BloomParameters(universe, 10, SESSION, false_positive_rate=1e-9, partitions=partitions)
        summed = _plain_sum(params, [encode_bloom(params, s) for s in sets])
        assert decode_bloom(params, summed).tolist() == union
        assert decode_bloom(params, summed, candidates=[5, 6, 150, 12_345]).tolist() == [5, 150, 12_345]
    with pytest.raises(InvalidParameters):
        encode_bloom(params, [universe])


def test_crafted_table_fails_instead_of_looping():
    params = PSUParameters(10**6, 4, SESSION)
    from fedprivacy.psu.iblt import hash_ids

    x = np.array([4242], dtype=np.uint64)
    positions, _ = hash_ids(params, x)
    table = np.zeros(params.vector_length, dtype=np.uint64)
    for weight, cell in zip([5, 7, 11, 13], positions[:, 0]):  # different multiples of (1, x) per cell
        table[cell] = weight
        table[params.cells + cell] = weight * 4242
    result = peel(params, table)
    assert not result.success
    with pytest.raises(InvalidParameters):
        peel(params, np.full(params.vector_length, P61, dtype=np.uint64))
