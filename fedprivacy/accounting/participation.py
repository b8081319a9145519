"""One client's round of randomized response under its budget, sans-I/O.

``participate`` draws the randomized set, checks the budget filter with the resulting (public)
report counts, and only then returns the set together with the ledger line and the next memo. The
caller must persist both (ledger line appended, memo saved atomically) *before* anything leaves the
device; if the filter says no, :class:`BudgetExceeded` is raised, nothing is returned, and the drawn
coins are discarded unseen (no report depends on them).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..hazmat.prg import RandomSource, system_random_bytes
from ..ldp.mechanism import RandomizedSet, randomize
from ..ldp.memo import PermanentMemo
from ..ldp.params import NeighbourRelation, RRParameters
from .accountant import replay
from .events import MECHANISM_DOUBLE_RR, PrivacyEvent
from .ledger import Ledger

__all__ = ["Participation", "participate", "refusal_event"]


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
    return Participation(result, event, line, result.memo)


def refusal_event(ledger: Ledger, round_index: int) -> str:
    """Record that the client sat a round out (costs nothing); returns the line to append."""
    return ledger.append(PrivacyEvent(ledger.client_id, round_index, "refusal", MECHANISM_DOUBLE_RR))
