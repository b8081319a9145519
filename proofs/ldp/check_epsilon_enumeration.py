"""Check for claim ldp/1 (see claim-1-epsilon-maps.md)."""

from __future__ import annotations

import pytest

from fedprivacy.ldp import RRParameters, epsilon_after_reports

from .enumerate import max_log_ratio, report_distribution

CPP4 = RRParameters.preset(4)
ASYMMETRIC = RRParameters("1/2", "1/16", "3/4", "1/4")


@pytest.mark.parametrize("params", [CPP4, ASYMMETRIC], ids=["cpp4", "asymmetric"])
def test_one_report_costs_epsilon_1(params):
    holding = report_distribution(params, [10], [10], rounds=1)
    not_holding = report_distribution(params, [10], [], rounds=1)
    assert max_log_ratio(holding, not_holding) == pytest.approx(params.epsilon_1, abs=1e-12)


@pytest.mark.parametrize("params, rounds", [(CPP4, 2), (CPP4, 3), (ASYMMETRIC, 2)], ids=["cpp4-2", "cpp4-3", "asym-2"])
def test_reports_over_one_memo_cost_epsilon_t(params, rounds):
    holding = report_distribution(params, [10], [10], rounds=rounds)
    not_holding = report_distribution(params, [10], [], rounds=rounds)
    exact = max_log_ratio(holding, not_holding)
    assert exact == pytest.approx(epsilon_after_reports(params, rounds), abs=1e-12)
    assert params.epsilon_1 <= exact <= params.epsilon_inf


def test_sequential_sum_is_not_an_upper_bound():
    holding = report_distribution(ASYMMETRIC, [10], [10], rounds=2)
    not_holding = report_distribution(ASYMMETRIC, [10], [], rounds=2)
    assert max_log_ratio(holding, not_holding) > 2 * ASYMMETRIC.epsilon_1


def test_permanent_answer_costs_epsilon_inf():
    # With p3 = 1, p4 = 0 each report *is* the permanent answer.
    params = RRParameters("3/4", "1/4", "1", "0")
    holding = report_distribution(params, [10], [10], rounds=2)
    not_holding = report_distribution(params, [10], [], rounds=2)
    assert max_log_ratio(holding, not_holding) == pytest.approx(params.epsilon_inf, abs=1e-12)


def test_replace_one_and_two_indices_cost_twice():
    one = report_distribution(CPP4, [10, 20], [10], rounds=1)
    other = report_distribution(CPP4, [10, 20], [20], rounds=1)
    assert max_log_ratio(one, other) == pytest.approx(2 * CPP4.epsilon_1, abs=1e-12)
    both = report_distribution(CPP4, [10, 20], [10, 20], rounds=1)
    none = report_distribution(CPP4, [10, 20], [], rounds=1)
    assert max_log_ratio(both, none) == pytest.approx(2 * CPP4.epsilon_1, abs=1e-12)
