"""What one party of a secure sum accepts from the server: :class:`SecAggPolicy`.

The server proposes a sum's party count, threshold, graph and vector length; the client checks them
against its own policy before it releases anything (``protocols/secagg/spec.md``, "Client policy").
The threat model is stated there, not here.

This is the secure sum's part of the client's limits. The whole client policy,
:class:`fedprivacy.policy.ClientPolicy`, extends it (through :class:`fedprivacy.psu.policy.PSUPolicy`)
with the limits of the protocols above it, so a :class:`~fedprivacy.policy.ClientPolicy` is accepted
wherever a :class:`SecAggPolicy` is, and this package never imports the composed policy.

Extending: a frozen dataclass whose fields all have defaults; add a field with a default and its
check in :meth:`SecAggPolicy._field_checks`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InvalidParameters, PolicyViolation
from .params import MAX_CLIENTS, Adversary, SecAggConfig, consistency_quorum, minimum_threshold
from .rowgraph import ROW_SECURITY_BITS, log_disconnection_bound, row_graph_survivors

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["DEFAULT_ALLOCATION_BYTES", "SecAggPolicy"]

DEFAULT_ALLOCATION_BYTES = 512 << 20  # 512 MiB for any one array a server message makes the client allocate

FieldCheck = Callable[[object], "str | None"]


def positive_int(low: int, high: int) -> FieldCheck:
    """A field check: an integer (not a bool) in [low, high]."""

    def check(value: object) -> str | None:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            return f"must be an integer in [{low}, {high}], got {value!r}"
        return None

    return check


def _fraction(value: object) -> str | None:
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value < 1):
        return f"must be in [0, 1), got {value!r}"
    return None


def _closed_fraction(value: object) -> str | None:
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1):
        return f"must be in [0, 1], got {value!r}"
    return None


def _flag(value: object) -> str | None:
    return None if isinstance(value, bool) else f"must be a bool, got {value!r}"


@dataclass(frozen=True)
class SecAggPolicy:
    """A secure sum's client-side limits (frozen, validated at construction; safe defaults).

    The fields' meanings are documented on :class:`fedprivacy.policy.ClientPolicy`, which extends
    this class: ``adversary``, ``corrupt_fraction``, ``min_parties``, ``max_allocation_bytes``,
    ``min_choosers``, ``row_survivor_fraction`` and ``allow_insecure``.
    """

    adversary: Adversary = Adversary.SEMI_MALICIOUS
    corrupt_fraction: float = 0.05
    min_parties: int = 3
    max_allocation_bytes: int = DEFAULT_ALLOCATION_BYTES
    min_choosers: int = 2
    allow_insecure: bool = False
    row_survivor_fraction: float = 0.05

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "adversary", Adversary(self.adversary))
        except ValueError:
            raise InvalidParameters(f"unknown adversary {self.adversary!r}") from None
        name = type(self).__name__
        for field_name, check in self._field_checks().items():
            problem = check(getattr(self, field_name))
            if problem:
                raise InvalidParameters(f"{name}.{field_name}: {problem}")
        self._check_combinations()

    @classmethod
    def _field_checks(cls) -> dict[str, FieldCheck]:
        """Checks per field (a subclass adds its own fields' checks to these)."""
        return {
            "corrupt_fraction": _fraction,
            "min_parties": positive_int(2, MAX_CLIENTS),
            "max_allocation_bytes": positive_int(1, 1 << 62),
            "min_choosers": positive_int(1, 1 << 31),
            "allow_insecure": _flag,
            "row_survivor_fraction": _closed_fraction,
        }

    def _check_combinations(self) -> None:
        """Checks across fields, run after every field's own check (a subclass extends them)."""
        name = type(self).__name__
        if self.min_choosers < 2 and not self.allow_insecure:
            raise InvalidParameters(
                f"{name}.min_choosers = 1 lets a row's count sum reveal who alone chose it; "
                "set allow_insecure=True to accept that"
            )
        if self.row_survivor_fraction == 0 and not self.allow_insecure:
            raise InvalidParameters(f"{name}.row_survivor_fraction = 0 accepts any sparse rows' graph; "
                                    "set allow_insecure=True to accept that")

    def replace(self, **changes: Any) -> Self:
        """A validated copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def minimum_threshold(self, clients: int, neighbours: int) -> int:
        """The smallest threshold this client accepts for n = ``clients`` and k = ``neighbours``."""
        return minimum_threshold(clients, neighbours, self.corrupt_fraction, self.adversary)

    def check_secagg_config(self, config: SecAggConfig, what: str = "secure sum") -> None:
        """:class:`PolicyViolation` unless the config's party count and threshold meet the policy."""
        if self.adversary is Adversary.MALICIOUS and not config.malicious:
            raise PolicyViolation(
                "adversary", f"the {what} is not in malicious mode (signed keys, consistency check), which this client requires"
            )
        if config.clients < self.min_parties:
            raise PolicyViolation("min_parties", f"the {what} has {config.clients} parties, the client needs >= {self.min_parties}")
        floor = self.minimum_threshold(config.clients, config.neighbours)
        if config.threshold < floor:
            raise PolicyViolation(
                "adversary",
                f"the {what}'s threshold t={config.threshold} (n={config.clients}, k={config.neighbours}) is below "
                f"{floor}, the smallest safe against a {self.adversary.value} server with "
                f"corrupt_fraction={self.corrupt_fraction}",
            )
        # The consistency quorum: a majority over our own c (a curious server does not split, so a
        # curious policy, like its threshold floor, does not ask for one).
        if config.malicious and config.full_graph and self.adversary is not Adversary.CURIOUS:
            quorum = consistency_quorum(config.clients, self.corrupt_fraction)
            if config.quorum < quorum:
                raise PolicyViolation(
                    "adversary",
                    f"the {what}'s consistency quorum {config.quorum} (n={config.clients}) is below {quorum}, a "
                    f"majority over the corrupt parties of corrupt_fraction={self.corrupt_fraction}",
                )

    def check_rows_graph(self, config: SecAggConfig, what: str = "rows' secure sum") -> None:
        """:class:`PolicyViolation` unless a per-row sum's graph is full, or sparse with a degree that
        keeps ``row_survivor_fraction`` x n honest surviving choosers of a row connected except with
        probability below 2^-40 (fedprivacy/secagg/rowgraph.py)."""
        if config.full_graph or self.row_survivor_fraction == 0:
            return
        survivors = row_graph_survivors(config.clients, self.row_survivor_fraction)
        if log_disconnection_bound(config.clients, config.neighbours, survivors) >= -ROW_SECURITY_BITS * math.log(2):
            raise PolicyViolation(
                "row_survivor_fraction",
                f"the {what}'s graph (n={config.clients}, k={config.neighbours}) may split a row with {survivors} "
                f"honest surviving choosers with probability above 2^-{ROW_SECURITY_BITS}",
            )

    def check_allocation(self, nbytes: int, what: str) -> None:
        """:class:`PolicyViolation` if a server message asks the client to allocate more than the budget."""
        if nbytes > self.max_allocation_bytes:
            raise PolicyViolation(
                "max_allocation_bytes", f"{what} would take {nbytes} bytes, above the budget of {self.max_allocation_bytes}"
            )
