"""Audit reports over many clients' ledgers (what ``fedprivacy audit`` prints)."""

from __future__ import annotations

import math
import statistics

from .accountant import ACCOUNTANT, CROSS_CHECK, ClientBudget
from .ledger import LedgerIntegrityError

__all__ = ["client_report", "population_report"]


def _finite(value: float) -> float | str:
    return "inf" if math.isinf(value) else value


def client_report(source: str, budget: ClientBudget) -> dict:
    spent = budget.spent()
    return {
        "source": source,
        "client_id": budget.client_id,
        "releases": budget.releases,
        "refusals": budget.refusals,
        "epochs": len(budget.epochs),
        "spent": _finite(spent),
        "cap": _finite(budget.cap),
        "remaining": _finite(max(budget.cap - spent, 0.0)) if not math.isinf(spent) else 0.0,
        "lifetime_bound": _finite(budget.lifetime_cap()),
        "rounds_until_exhaustion": budget.rounds_until_exhaustion(),
        "accountant": ACCOUNTANT,
        "cross_check": CROSS_CHECK,
        "cross_check_spent": _finite(budget.cross_check()),
        "disagreement": budget.disagreement(),
        "naive_sum_not_a_bound": _finite(budget.naive_sum),
        "relation": "add-remove-one-index",
        "update_releases": budget.update_releases,
        "update_refusals": budget.update_refusals,
        "update_rho": budget.update_rho,
        "update_delta": budget.update_delta,
        "update_epsilon": _finite(budget.update_epsilon()),
        "update_relation": "replace-one-client-upload-per-round",
    }


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {}
    ordered = sorted(values)

    def pick(q: float) -> float | str:
        return _finite(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)])

    finite = [v for v in values if not math.isinf(v)]
    return {
        "min": _finite(ordered[0]),
        "p50": pick(0.5),
        "p90": pick(0.9),
        "p99": pick(0.99),
        "max": _finite(ordered[-1]),
        "mean_finite": statistics.fmean(finite) if finite else None,
    }


def population_report(clients: list[dict], broken: list[LedgerIntegrityError]) -> dict:
    spent = [math.inf if c["spent"] == "inf" else c["spent"] for c in clients]
    return {
        "clients": len(clients),
        "broken_ledgers": [{"file": e.source, "line": e.line, "reason": e.reason} for e in broken],
        "spent": _percentiles(spent),
        "over_cap": sum(1 for c in clients if c["spent"] == "inf" or (c["cap"] != "inf" and c["spent"] > c["cap"])),
        "disagreements": sum(1 for c in clients if c["disagreement"]),
        "accountant": ACCOUNTANT,
        "cross_check": CROSS_CHECK,
        "per_client": clients,
    }
