"""Check for claim ldp/3 (see claim-3-accounting.md)."""

from __future__ import annotations

import math

import pytest

from fedprivacy.accounting import Ledger, parse_ledger, participate, replay
from fedprivacy.errors import BudgetExceeded
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.ldp import PermanentMemo, RRParameters

from .enumerate import max_log_ratio, report_distribution

ASYMMETRIC = RRParameters("1/2", "1/16", "3/4", "1/4")


def _rounds(params, rounds, cap=math.inf, epoch=0, ledger=None, lines=None):
    if ledger is None:
        ledger, header = Ledger.create("proof", cap)
        lines = [header]
    memo = PermanentMemo.empty("proof", params, epoch)
    for round_index in range(rounds):
        part = participate(ledger, memo, params, [10, 11, 12], [10], round_index,
                           random_bytes=DeterministicRandomness(f"acc{epoch}-{round_index}"))
        lines.append(part.ledger_line)
        memo = part.memo
    return ledger, lines, memo


@pytest.mark.parametrize("params, rounds", [(ASYMMETRIC, 1), (ASYMMETRIC, 2), (RRParameters.preset(4), 3)])
def test_spend_equals_the_enumerated_cost(params, rounds):
    _, lines, _ = _rounds(params, rounds)
    spent = replay(parse_ledger(lines)).spent()
    exact = max_log_ratio(report_distribution(params, [10], [10], rounds), report_distribution(params, [10], [], rounds))
    assert spent == pytest.approx(exact, abs=1e-12)


def test_epochs_add_and_stay_under_the_lifetime_bound():
    ledger, lines, _ = _rounds(ASYMMETRIC, 2)
    _rounds(ASYMMETRIC, 3, epoch=1, ledger=ledger, lines=lines)
    budget = replay(parse_ledger(lines))
    assert budget.spent() == pytest.approx(ASYMMETRIC.epsilon_after(2) + ASYMMETRIC.epsilon_after(3), abs=1e-12)
    assert budget.spent() <= budget.lifetime_cap() == pytest.approx(2 * ASYMMETRIC.epsilon_inf)


def test_filter_refuses_before_returning_anything():
    cap = (ASYMMETRIC.epsilon_1 + ASYMMETRIC.epsilon_after(2)) / 2
    ledger, lines, memo = _rounds(ASYMMETRIC, 1, cap=cap)
    head, count = ledger.head, len(ledger.events)
    with pytest.raises(BudgetExceeded):
        participate(ledger, memo, ASYMMETRIC, [10, 11, 12], [10], 1, random_bytes=DeterministicRandomness("x"))
    assert (ledger.head, len(ledger.events)) == (head, count)
    assert replay(parse_ledger(lines)).spent() <= cap
