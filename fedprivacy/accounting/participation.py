"""One client's round of randomized response under its budget, sans-I/O.

``participate`` draws the randomized set, checks the budget filter with the resulting (public)
report counts, and only then returns the set together with the ledger line and the next memo. The
caller must persist both *before* anything leaves the device, the memo first (saved atomically; it
carries the ledger line) and then the ledger line; if the filter says no, :class:`BudgetExceeded` is
raised, nothing is returned, and the drawn coins are discarded unseen (no report depends on them).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidParameters, LocalProtocolError
from ..hazmat.prg import RandomSource, system_random_bytes
from ..ldp.mechanism import RandomizedSet, randomize
from ..ldp.memo import PermanentMemo
from ..ldp.params import NeighbourRelation, RRParameters
from .accountant import replay
from .events import MECHANISM_DOUBLE_RR, PrivacyEvent
from .ledger import Ledger

__all__ = [
    "Participation",
    "participate",
    "refusal_event",
    "check_memo_matches_ledger",
    "cap_event",
    "psu_attempt_event",
]


@dataclass(frozen=True, eq=False)
class Participation:
    randomized: RandomizedSet
    event: PrivacyEvent
    ledger_line: str
    memo: PermanentMemo


def participate(
    ledger: Ledger,
    memo: PermanentMemo,
    params: RRParameters,
    union: object,
    real_ids: object,
    round_index: int,
    *,
    random_bytes: RandomSource = system_random_bytes,
) -> Participation:
    memo.check_owner(ledger.client_id, params)
    budget = replay(ledger)
    check_memo_matches_ledger(memo, ledger, budget.reports_in(params, memo.epoch))
    result = randomize(params, memo, union, real_ids, random_bytes=random_bytes)
    budget.check(params, memo.epoch, result.max_reports)  # raises BudgetExceeded; nothing is kept
    event = PrivacyEvent(
        client_id=ledger.client_id,
        round_index=round_index,
        kind="release",
        mechanism=MECHANISM_DOUBLE_RR,
        parameters=params.as_strings(),
        relation=NeighbourRelation.ADD_REMOVE_ONE.value,
        epoch=memo.epoch,
        indices_reported=result.union_size,
        indices_new=result.new_indices,
        max_reports=result.max_reports,
        epsilon_report=params.epsilon_1,
        epsilon_inf=params.epsilon_inf,
    )
    line = ledger.append(event)
    # The memo carries its anchor line: it is saved first, and the line rolled forward from it if a
    # crash stops the process before the ledger append (see protocols/ldp/storage.md).
    return Participation(result, event, line, result.memo.with_anchor(len(ledger.events), ledger.head, line))


def check_memo_matches_ledger(memo: PermanentMemo, ledger: Ledger, recorded_reports: int) -> None:
    """:class:`LocalProtocolError` unless ``memo`` is the one saved after the ledger's last release.

    A fresh memo is accepted only for an epoch (and parameter set) with no recorded release;
    otherwise the ledger must still hold the memo's anchor line, record no release after it, and
    agree on the epoch's report maximum. Anything else means a reset or rolled-back memo or a
    truncated ledger -- using it would draw fresh permanent answers without charging them.
    """
    if memo.fresh:
        if recorded_reports or len(memo):
            raise LocalProtocolError(
                f"a fresh memo for epoch {memo.epoch}, but the ledger records releases from that epoch: "
                "the memo was reset; restore it, or start a new epoch (charged anew)"
            )
        return
    seq = memo.ledger_seq
    if not (0 < seq < len(ledger.hashes)) or ledger.hashes[seq] != memo.ledger_head.hex():
        raise LocalProtocolError("the ledger no longer contains the line this memo was saved after (truncated or replaced)")
    if any(event.kind == "release" for event in ledger.events[seq:]):
        raise LocalProtocolError("the ledger records releases after this memo was saved: the memo was rolled back")
    if memo.max_reports != recorded_reports:
        raise LocalProtocolError("the memo's report counts disagree with the ledger")


def refusal_event(ledger: Ledger, round_index: int, reason: str | None = None) -> str:
    """Record that the client sat a round out (costs nothing); returns the line to append.
    ``reason`` (e.g. the client policy's refusal) is kept in the line's parameters."""
    parameters = {} if reason is None else {"reason": str(reason)}
    return ledger.append(PrivacyEvent(ledger.client_id, round_index, "refusal", MECHANISM_DOUBLE_RR, parameters))


def cap_event(ledger: Ledger, epsilon_cap: float) -> str | None:
    """The line lowering the ledger's cap to ``epsilon_cap`` (None when it is not lower: a cap only goes
    down). The accountant enforces the lowest cap recorded from then on."""
    if not (isinstance(epsilon_cap, (int, float)) and not isinstance(epsilon_cap, bool) and epsilon_cap >= 0):
        raise InvalidParameters("epsilon_cap must be a number >= 0")
    if not float(epsilon_cap) < replay(ledger).cap:
        return None
    event = PrivacyEvent(ledger.client_id, 0, "cap", MECHANISM_DOUBLE_RR, {"epsilon_cap": repr(float(epsilon_cap))})
    return ledger.append(event)


def psu_attempt_event(ledger: Ledger, round_index: int, attempt: int) -> str:
    """Record that the client joins PSU attempt ``attempt`` of round ``round_index`` (costs nothing)."""
    return ledger.append(PrivacyEvent(ledger.client_id, round_index, "psu-attempt", MECHANISM_DOUBLE_RR,
                                      {"attempt": str(int(attempt))}))
