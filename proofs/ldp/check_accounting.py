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


def _states_after_each_write(params, rounds):
    """The bytes of (ledger, head, memo) after every write of ``rounds`` releases, in the storage
    adapter's order (memo, line, head), with the ledger line also cut in half; and the rounds whose
    reports had left the device (all writes of the round done) at that point."""
    from fedprivacy.accounting.recovery import HeadRecord

    ledger, header = Ledger.create("proof", math.inf)
    files = {"ledger": (header + "\n").encode(), "head": HeadRecord("proof", 0, ledger.head).encode(), "memo": None}
    memo = PermanentMemo.empty("proof", params)
    yield dict(files), 0
    for r in range(rounds):
        part = participate(ledger, memo, params, [10, 11, 12], [10], r, random_bytes=DeterministicRandomness(f"crash{r}"))
        memo = part.memo
        files["memo"] = memo.encode()
        yield dict(files), r
        line = (part.ledger_line + "\n").encode()
        yield {**files, "ledger": files["ledger"] + line[: len(line) // 2]}, r
        files["ledger"] += line
        yield dict(files), r
        files["head"] = HeadRecord("proof", len(ledger.events), ledger.head).encode()
        yield dict(files), r + 1


def test_recovery_after_any_crash_never_charges_less_than_was_sent():
    """Claim ldp/3, crash clause: every state a crash can leave is recovered, and its spend lies
    between the exact cost of the reports sent and that plus the one round under way."""
    from fedprivacy.accounting.recovery import reconcile

    params = ASYMMETRIC
    for files, sent in _states_after_each_write(params, 3):
        state = reconcile("proof", files["ledger"], files["head"], files["memo"])
        spent = replay(state.ledger).spent()
        assert spent >= params.epsilon_after(sent) - 1e-12 if sent else spent >= 0
        assert spent <= params.epsilon_after(sent + 1) + 1e-12
