"""Composition for the double randomized response, and the budget filter.

Per index (relation: add/remove one index), all reports drawn from one memo epoch are
post-processing of one permanent answer: T reports cost exactly epsilon_T (see
:func:`fedprivacy.ldp.epsilon_after_reports`), which grows to epsilon_inf and never past it. Memos
of different epochs use independent coins, so their costs add (pure sequential composition). New
indices entering the union get their own permanent answers: new events, but for a different
coordinate, so they do not raise the per-index cost. The client's spend is therefore

    spent = sum over epochs e of epsilon_{T_e}(params_e)

with T_e the most reports any index drew in epoch e (an index present in every round of every epoch
attains it exactly). Cross-check: the same sum computed by enumerating every report history
(``epsilon_after_reports_by_enumeration``); any disagreement above 1e-9 is flagged. ``naive_sum``
(the sum of per-report epsilons) is reported for contrast and is NOT a bound: with asymmetric
permanent layers epsilon_T can exceed T * epsilon_1.

The budget filter (Rogers et al., pure DP) refuses a release that would take ``spent`` past the
cap; the projected cost depends on public data only (the union history and the parameters), so a
refusal reveals nothing about the client's set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import BudgetExceeded
from ..ldp.params import RRParameters, epsilon_after_reports, epsilon_after_reports_by_enumeration
from .events import UpdateEvent
from .ledger import Ledger

__all__ = ["ClientBudget", "replay", "ACCOUNTANT", "CROSS_CHECK", "DISAGREEMENT_TOLERANCE"]

ACCOUNTANT = "memoized-exact-pure"  # epsilon_T per epoch, summed over epochs
CROSS_CHECK = "report-history-enumeration"
DISAGREEMENT_TOLERANCE = 1e-9
_ENUMERATION_LIMIT = 2048  # beyond this many reports the enumeration is replaced by the epsilon_inf cap


@dataclass
class ClientBudget:
    client_id: str
    cap: float
    # (epoch, parameters) -> (params, T max). Keying by both means a memo epoch reused with other
    # parameters is charged as a separate memo (never cheaper), whatever order events arrive in.
    epochs: dict[tuple[int, tuple], tuple[RRParameters, int]] = field(default_factory=dict)
    releases: int = 0
    refusals: int = 0
    psu_attempts: dict[int, int] = field(default_factory=dict)  # round index -> PSU attempts joined
    naive_sum: float = 0.0

    # Updates (distributed discrete Gaussian): zCDP, added over rounds; reported at the smallest delta used.
    update_rho: float = 0.0
    update_releases: int = 0
    update_refusals: int = 0
    update_delta: float | None = None
    update_total_variation: float = 0.0  # the table sampler's distance from exact noise, summed

    def record_update(self, event: UpdateEvent) -> None:
        if event.kind == "update-refusal":
            self.update_refusals += 1
            return
        self.update_rho += event.rho
        self.update_releases += 1
        self.update_total_variation += _sampler_distance(event.row_coordinates + event.dense_coordinates)
        self.update_delta = event.delta if self.update_delta is None else min(self.update_delta, event.delta)

    def update_epsilon(self, delta: float | None = None) -> float:
        """(epsilon, delta) of every update release so far (:func:`fedprivacy.ddp.params.reported_epsilon`)."""
        from ..ddp.params import reported_epsilon

        delta = self.update_delta if delta is None else delta
        if delta is None:
            return 0.0
        return reported_epsilon(self.update_rho, delta, self.update_total_variation)

    def check_update(self, rho: float, delta: float, epsilon_cap: float, coordinates: int = 0) -> None:
        """:class:`BudgetExceeded` if one more update release of ``rho`` takes epsilon (at ``delta``) past the cap."""
        from ..ddp.params import reported_epsilon

        smallest = delta if self.update_delta is None else min(delta, self.update_delta)
        projected = reported_epsilon(self.update_rho + rho, smallest,
                                     self.update_total_variation + _sampler_distance(coordinates))
        if projected > epsilon_cap:
            raise BudgetExceeded(
                f"client {self.client_id!r}: this round's update would bring the update epsilon to {projected:.4f} "
                f"(delta {smallest:g}), above its cap {epsilon_cap:.4f}; the client sits this round out"
            )

    def spent(self) -> float:
        return math.fsum(epsilon_after_reports(params, reports) for params, reports in self.epochs.values())

    def cross_check(self) -> float:
        total = []
        for params, reports in self.epochs.values():
            if reports <= _ENUMERATION_LIMIT:
                total.append(epsilon_after_reports_by_enumeration(params, reports))
            else:
                total.append(params.epsilon_inf)
        return math.fsum(total)

    def lifetime_cap(self) -> float:
        """Sum of the epochs' epsilon_inf: what the spend can never exceed, however many rounds."""
        return math.fsum(params.epsilon_inf for params, _ in self.epochs.values())

    def disagreement(self) -> bool:
        a, b = self.spent(), self.cross_check()
        if math.isinf(a) or math.isinf(b):
            return a != b
        return abs(a - b) > DISAGREEMENT_TOLERANCE * max(1.0, abs(a))

    def reports_in(self, params: RRParameters, epoch: int) -> int:
        """The most reports any index drew from memo epoch ``epoch`` with ``params`` (0 if none)."""
        return self.epochs.get(_key(epoch, params), (params, 0))[1]

    def record(self, params: RRParameters, epoch: int, max_reports: int) -> None:
        key = _key(epoch, params)
        self.epochs[key] = (params, max(max_reports, self.epochs.get(key, (params, 0))[1]))

    def projected(self, params: RRParameters, epoch: int, max_reports: int) -> float:
        """The spend if the next release leaves ``max_reports`` as this memo's report maximum."""
        future = ClientBudget(self.client_id, self.cap, dict(self.epochs))
        future.record(params, epoch, max_reports)
        return future.spent()

    def would_exceed(self, params: RRParameters, epoch: int, max_reports: int) -> bool:
        return self.projected(params, epoch, max_reports) > self.cap

    def check(self, params: RRParameters, epoch: int, max_reports: int) -> None:
        """:class:`BudgetExceeded` if the release would pass the cap."""
        projected = self.projected(params, epoch, max_reports)
        if projected > self.cap:
            raise BudgetExceeded(
                f"client {self.client_id!r}: this round would bring the per-index epsilon to {projected:.4f}, "
                f"above its cap {self.cap:.4f} (spent {self.spent():.4f}); the client sits this round out"
            )

    def rounds_until_exhaustion(self) -> int | None:
        """More rounds (same parameters, the oldest index in every union) before the cap is passed;
        None if never (epsilon_inf of the current epoch keeps the spend under the cap)."""
        if not self.epochs:
            return None
        (epoch, _), (params, reports) = max(self.epochs.items(), key=lambda item: item[0][0])
        horizon = 1 << 20
        if not self.would_exceed(params, epoch, reports + horizon):
            return None  # not within about a million rounds (epsilon_T is capped by epsilon_inf)
        low, high = 0, horizon  # the spend grows with T: find the first extra round that passes the cap
        while low < high:
            middle = (low + high) // 2
            if self.would_exceed(params, epoch, reports + middle + 1):
                high = middle
            else:
                low = middle + 1
        return low


def _sampler_distance(coordinates: int) -> float:
    from ..hazmat.discrete_gaussian import TABLE_TOTAL_VARIATION_LOG2

    return coordinates * 2.0**TABLE_TOTAL_VARIATION_LOG2


def _key(epoch: int, params: RRParameters) -> tuple[int, tuple]:
    return epoch, (params.p1, params.p2, params.p3, params.p4)


def replay(ledger: Ledger) -> ClientBudget:
    """Rebuild a client's budget state from its verified ledger."""
    budget = ClientBudget(ledger.client_id, ledger.epsilon_cap)
    for event in ledger.events:
        if isinstance(event, UpdateEvent):
            budget.record_update(event)
            continue
        if event.kind == "refusal":
            budget.refusals += 1
            continue
        if event.kind == "cap":  # a cap only goes down
            budget.cap = min(budget.cap, float(event.parameters["epsilon_cap"]))
            continue
        if event.kind == "psu-attempt":
            budget.psu_attempts[event.round_index] = budget.psu_attempts.get(event.round_index, 0) + 1
            continue
        budget.record(event.params(), event.epoch, event.max_reports)
        budget.releases += 1
        budget.naive_sum += event.epsilon_report
    return budget
