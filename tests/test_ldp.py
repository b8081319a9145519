"""Randomized response: parameters, exact sampler, memo format, mechanism, estimators, CLI."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedprivacy.cli import main
from fedprivacy.errors import DecodeError, InvalidParameters
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.hazmat.sampling import as_probability, bernoulli, uniform_below
from fedprivacy.ldp import (
    PermanentMemo,
    RRParameters,
    epsilon_after_reports,
    epsilon_after_reports_by_enumeration,
    estimate_holders,
    estimate_variance,
    lifetime_variance_floor,
    randomize,
    scale_for_relation,
    theorem_5_5_probabilities,
)
from proofs.audit import clopper_pearson


def test_table_3_presets():
    expected = {2: (Fraction(113, 128), Fraction(15, 128), 2.019, 2.708), 3: (Fraction(25, 32), Fraction(7, 32), 1.273, 1.946),
                4: (Fraction(5, 8), Fraction(3, 8), 0.511, 1.099)}
    for cpp, (p5, p6, eps1, eps_inf) in expected.items():
        params = RRParameters.preset(cpp)
        assert (params.p5, params.p6) == (p5, p6)
        assert round(params.epsilon_1, 3) == eps1 and round(params.epsilon_inf, 3) == eps_inf
    assert math.isinf(RRParameters.preset(1).epsilon_inf)
    assert RRParameters.preset(5).epsilon_inf == 0 == RRParameters.preset(5).epsilon_1


def test_paper_theorem_5_5_values():
    p7, p8 = theorem_5_5_probabilities(RRParameters.preset(2), 1, 99)
    assert float(p7) == pytest.approx(3.9e-6, rel=0.02) and float(p8) == pytest.approx(0.1172, abs=1e-4)
    _, p8_two = theorem_5_5_probabilities(RRParameters.preset(4), 2, 98)
    assert float(p8_two) == pytest.approx(0.1406, abs=1e-4)


@pytest.mark.parametrize(
    "args, match",
    [(("1/4", "3/4", "1/2", "1/2"), "p2"), (("3/4", "1/4", "1/4", "3/4"), "p4"), (("3/2", "0", "1", "0"), r"\[0, 1\]"),
     (("1", "0", "1/2", "1/4"), "infinity"), (("x", "0", "1", "0"), "rational"), ((1e-30, 0, 1, 0), "denominator")],
)
def test_invalid_parameters(args, match):
    with pytest.raises(InvalidParameters, match=match):
        RRParameters(*args)


@given(st.floats(0.05, 6.0), st.floats(0.0, 1.0))
def test_targets_are_met_and_not_exceeded(epsilon_inf, fraction):
    epsilon_1 = epsilon_inf * fraction
    params = RRParameters.from_epsilons(epsilon_inf, epsilon_1)
    assert params.epsilon_inf <= epsilon_inf and params.epsilon_1 <= epsilon_1 + 1e-12
    assert params.epsilon_inf > epsilon_inf - 1e-6
    assert params.p1 + params.p2 == 1 and params.p3 + params.p4 == 1


def test_targets_reproduce_cpp2_up_to_rounding():
    params = RRParameters.from_epsilons(math.log(15), math.log(113 / 15))
    assert abs(float(params.p1) - 15 / 16) < 1e-8 and abs(float(params.p3) - 15 / 16) < 1e-6
    with pytest.raises(InvalidParameters):
        RRParameters.from_epsilons(1.0, 2.0)


@given(st.sampled_from([2, 3, 4]), st.integers(1, 40))
def test_epsilon_after_reports_is_monotone_and_capped(cpp, reports):
    params = RRParameters.preset(cpp)
    value = epsilon_after_reports(params, reports)
    assert params.epsilon_1 - 1e-12 <= value <= params.epsilon_inf + 1e-12
    assert value >= epsilon_after_reports(params, reports - 1) - 1e-12
    assert value == pytest.approx(epsilon_after_reports_by_enumeration(params, reports), abs=1e-12)


def test_sequential_sum_is_not_a_bound_for_asymmetric_memos():
    params = RRParameters("1/2", "9/500", "3/4", "1/4")
    assert epsilon_after_reports(params, 2) > 2 * params.epsilon_1
    assert epsilon_after_reports(params, 2) == pytest.approx(1.475, abs=1e-3)


def test_reported_epsilons_are_never_below_the_exact_value():
    from decimal import Decimal, getcontext

    getcontext().prec = 80
    params = RRParameters.preset(4)
    for reports in (1, 7, 50, 200):
        p1, p2, p3, p4 = params.p1, params.p2, params.p3, params.p4
        ratio = (p1 * p3**reports + (1 - p1) * p4**reports) / (p2 * p3**reports + (1 - p2) * p4**reports)
        exact = (Decimal(ratio.numerator).ln() - Decimal(ratio.denominator).ln())
        assert Decimal(epsilon_after_reports(params, reports)) >= exact
    slow = RRParameters("3/4", "1/4", "5001/10000", "4999/10000")
    assert epsilon_after_reports(slow, 10**6) >= epsilon_after_reports(slow, 10**5)
    with pytest.raises(InvalidParameters, match="resolution"):
        RRParameters.from_epsilons(40.0)


def test_relations_scale():
    assert scale_for_relation(1.0, "add-remove-one-index") == 1.0
    assert scale_for_relation(1.0, "replace-one-index") == 2.0
    assert scale_for_relation(1.0, "whole-set", 300) == 600.0
    with pytest.raises(InvalidParameters):
        scale_for_relation(1.0, "whole-set")


def test_uniform_below_layout_and_rejection():
    words = [(3 << 62).to_bytes(8, "little"), (1 << 62).to_bytes(8, "little")]
    source = iter(words)
    assert uniform_below(4, 2, lambda n: b"".join(next(source) for _ in range(n // 8))).tolist() == [3, 1]
    # bound 3: a word >= floor(2^64/3)*3 is rejected and redrawn
    high = ((1 << 64) - 1).to_bytes(8, "little")
    feed = iter([high, (7).to_bytes(8, "little")])
    assert uniform_below(3, 1, lambda n: next(feed)).tolist() == [1]
    assert set(uniform_below(6, 5000, DeterministicRandomness("u")).tolist()) == set(range(6))


def test_bernoulli_extremes_are_exact():
    rand = DeterministicRandomness("b")
    assert bernoulli(np.zeros(1000, np.uint64), 16, rand).sum() == 0
    assert bernoulli(np.full(1000, 16, np.uint64), 16, rand).sum() == 1000
    assert as_probability(0.75) == Fraction(3, 4)


def test_randomize_keeps_memo_and_counts_reports():
    params = RRParameters.preset(3)
    memo = PermanentMemo.empty("alice", params)
    union = np.arange(50, 250, dtype=np.uint64)
    first = randomize(params, memo, union, [60, 70], random_bytes=DeterministicRandomness("r1"))
    assert first.new_indices == 200 and first.max_reports == 1
    second = randomize(params, first.memo, np.arange(0, 100, dtype=np.uint64), [60, 70], random_bytes=DeterministicRandomness("r2"))
    assert second.new_indices == 50 and second.max_reports == 2
    memo2 = second.memo
    assert len(memo2) == 250 and np.all(np.diff(memo2.ids.astype(np.int64)) > 0)
    old = np.searchsorted(memo2.ids, first.memo.ids)
    assert np.array_equal(memo2.answers[old], first.memo.answers)  # permanent answers never change
    assert set(second.chosen_ids.tolist()) <= set(range(100))


def test_randomize_input_validation():
    params = RRParameters.preset(4)
    memo = PermanentMemo.empty("bob", params)
    with pytest.raises(InvalidParameters):
        randomize(params, memo, [1.5, 2.0], [1])
    with pytest.raises(InvalidParameters):
        randomize(params, memo, [-1, 2], [1])
    with pytest.raises(InvalidParameters, match="other probabilities"):
        randomize(RRParameters.preset(3), memo, [1, 2], [1])
    result = randomize(params, memo, [5, 3, 3, 9], [3])  # unsorted with duplicates is fine
    assert result.union_size == 3


def test_memo_round_trip_and_damage_is_an_error():
    params = RRParameters.preset(2)
    memo = randomize(params, PermanentMemo.empty("carol", params), np.arange(1000, dtype=np.uint64), [5]).memo
    data = memo.encode()
    again = PermanentMemo.decode(data)
    assert again.client_id == "carol" and again.params == params
    assert np.array_equal(again.ids, memo.ids) and np.array_equal(again.answers, memo.answers)
    assert np.array_equal(again.reports, memo.reports)
    for damaged in (data[:-1], data[:100], b"x" + data[1:], data[:50] + bytes([data[50] ^ 1]) + data[51:], b""):
        with pytest.raises(DecodeError):
            PermanentMemo.decode(damaged)
    with pytest.raises(InvalidParameters, match="belongs"):
        again.check_owner("dave", params)


def test_estimators_are_unbiased_on_expectations():
    params = RRParameters.preset(3)
    holders, reporters = np.array([0, 10, 50]), 100
    expected_counts = holders * float(params.p5) + (reporters - holders) * float(params.p6)
    assert np.allclose(estimate_holders(expected_counts, reporters, params), holders)
    assert np.all(estimate_variance(holders, reporters, params) >= lifetime_variance_floor(holders, reporters, params) * 0)
    with pytest.raises(InvalidParameters):
        estimate_holders([5], reporters, RRParameters.preset(5))


def test_estimator_variance_matches_simulation():
    """Each of 400 indices is an independent trial: 60 clients, the first 20 hold every index."""
    params = RRParameters.preset(4)
    reporters, holders, trials = 60, 20, 400
    union = np.arange(trials, dtype=np.uint64)
    counts = np.zeros(trials)
    for client in range(reporters):
        memo = PermanentMemo.empty(f"c{client}", params)
        result = randomize(params, memo, union, union if client < holders else [],
                           random_bytes=DeterministicRandomness(f"est{client}"))
        counts[result.chosen_ids.astype(np.int64)] += 1
    estimates = estimate_holders(counts, reporters, params)
    variance = float(estimate_variance([holders], reporters, params)[0])
    # Seeded; mean within 5 standard errors (false-failure rate < 1e-6 for a random seed).
    assert abs(np.mean(estimates) - holders) < 5 * math.sqrt(variance / trials)
    assert 0.7 * variance < np.var(estimates) < 1.4 * variance


def test_clopper_pearson_closed_forms():
    low, high = clopper_pearson(0, 100, 0.05)
    assert low == 0 and high == pytest.approx(1 - 0.05 ** (1 / 100), abs=1e-12)
    low, high = clopper_pearson(100, 100, 0.05)
    assert high == 1 and low == pytest.approx(0.05 ** (1 / 100), abs=1e-12)
    assert clopper_pearson(50, 100, 0.025) == pytest.approx((0.39832, 0.60168), abs=1e-5)


def test_privacy_cli_gives_table_3(capsys):
    assert main(["privacy", "--cpp", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["epsilon_1_rounded_up"] == 2.02 and result["epsilon_inf_rounded_up"] == 2.71
    assert (result["p5"], result["p6"]) == ("113/128", "15/128")
    assert main(["privacy", "--p1", "1", "--p2", "0", "--p3", "1", "--p4", "0"]) == 2
    assert "infinity" in capsys.readouterr().err
    assert main(["privacy", "--p1", "1", "--p2", "0", "--p3", "1", "--p4", "0", "--allow-insecure", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["epsilon_inf"] == "inf"
    assert main(["privacy", "--cpp", "2", "--epsilon", "1"]) == 2


@given(
    st.fractions(min_value=0, max_value=1, max_denominator=64),
    st.fractions(min_value=0, max_value=1, max_denominator=64),
    st.integers(1, 500),
    st.data(),
)
def test_estimator_inverts_expected_counts(a, b, reporters, data):
    p1, p2 = max(a, b), min(a, b)
    params = RRParameters(p1, p2, "7/8", "1/8", allow_insecure=True)
    if params.p5 == params.p6:
        return
    holders = data.draw(st.integers(0, reporters))
    expected = holders * float(params.p5) + (reporters - holders) * float(params.p6)
    assert float(estimate_holders([expected], reporters, params)[0]) == pytest.approx(holders, abs=1e-6)
    assert float(estimate_variance([holders], reporters, params)[0]) >= 0
