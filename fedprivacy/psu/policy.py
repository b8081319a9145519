"""What one party of a private set union accepts from the server: :class:`PSUPolicy`.

A PSU runs a secure sum, so its limits extend the secure sum's (:class:`~fedprivacy.secagg.policy.SecAggPolicy`)
with the cohort and the attempts per round index (``protocols/psu/spec.md``; the threat model is
stated there). :class:`fedprivacy.policy.ClientPolicy` extends this class, so it is accepted
wherever a :class:`PSUPolicy` is, and this package never imports it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import PolicyViolation
from ..secagg.params import MAX_CLIENTS
from ..secagg.policy import FieldCheck, SecAggPolicy, positive_int

__all__ = ["PSUPolicy"]


@dataclass(frozen=True)
class PSUPolicy(SecAggPolicy):
    """A PSU's client-side limits: the secure sum's, plus ``max_psu_attempts`` and ``min_psu_cohort``
    (documented on :class:`fedprivacy.policy.ClientPolicy`)."""

    max_psu_attempts: int = 3
    min_psu_cohort: int = 3

    @classmethod
    def _field_checks(cls) -> dict[str, FieldCheck]:
        return {
            **super()._field_checks(),
            "max_psu_attempts": positive_int(1, 64),
            "min_psu_cohort": positive_int(2, MAX_CLIENTS),
        }

    def check_psu_cohort(self, parties: int) -> None:
        if parties < self.min_psu_cohort:
            raise PolicyViolation("min_psu_cohort", f"a PSU over {parties} parties; the client needs >= {self.min_psu_cohort}")

    def check_psu_attempt(self, previous_attempts: int) -> None:
        """``previous_attempts``: PSU attempts already joined for this round index (from the ledger)."""
        if previous_attempts >= self.max_psu_attempts:
            raise PolicyViolation(
                "max_psu_attempts",
                f"{previous_attempts} PSU attempts already joined for this round index; the client allows {self.max_psu_attempts}",
            )
