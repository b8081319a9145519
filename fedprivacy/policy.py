"""The client's own security policy: what it accepts from any server message (and from a run config).

The server proposes, the client disposes. Every number that bounds what the server can learn -- the
secure sums' thresholds and party counts, the PSU's cohort, table size and reruns, the rows'
``min_choosers``, the randomized-response parameters and the budget cap -- is checked by the client
against one :class:`ClientPolicy` that comes from the client's own configuration (the device, the
Flower *node* config), never from the server or the run config. The server may ask for more privacy,
never less. A request outside the policy raises :class:`~fedprivacy.errors.PolicyViolation`: the
client aborts that round and sends nothing more (and writes a ledger line where a budget is involved).

Where each knob is checked: ``protocols/secagg/spec.md`` and ``protocols/submodel/spec.md``,
section "Client policy". The threat model is stated there, not here.

Extending: the class is a frozen dataclass whose fields all have defaults; add a field with a default
and its check in :meth:`ClientPolicy.__post_init__` (through ``_validators``), and nothing else in
the library lists the fields. :meth:`ClientPolicy.replace` builds a changed copy.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .ddp.params import DDPPolicy
from .errors import InvalidParameters, PolicyViolation
from .ldp.params import RRParameters
from .secagg.params import MAX_CLIENTS, Adversary, consistency_quorum, minimum_threshold
from .secagg.rowgraph import (
    ROW_SECURITY_BITS,
    log_disconnection_bound,
    row_graph_survivors,
)

if TYPE_CHECKING:
    from .secagg.params import SecAggConfig

__all__ = ["ClientPolicy", "DEFAULT_ALLOCATION_BYTES", "weakened_policy"]

DEFAULT_ALLOCATION_BYTES = 512 << 20  # 512 MiB for any one array a server message makes the client allocate


def _default_rr() -> RRParameters:
    return RRParameters.preset(2)


@dataclass(frozen=True)
class ClientPolicy:
    """One client's policy (frozen, validated at construction). Every field has a safe default.

    Attributes
    ----------
    adversary : Adversary
        The server the client defends against when it checks a secure sum's threshold (default
        semi-malicious: it may lie about who dropped). Every value other than ``CURIOUS`` uses the
        semi-malicious bound of :func:`fedprivacy.secagg.params.minimum_threshold` or a stronger one.
        ``MALICIOUS`` (set instead of the default for a client with an identity key) also requires the config's
        malicious mode: signed keys and the consistency check (``protocols/secagg/spec.md`` §14); its
        threshold bound is the same formula (§14.2).
    corrupt_fraction : float
        The fraction of the parties the client assumes may collude with the server (default 0.05).
    min_parties : int
        The fewest parties the client accepts in any secure sum (default 3: with two, each party's
        input is the sum minus its own).
    max_allocation_bytes : int
        The most bytes the client allocates for any one array sized by a server message (a PSU table,
        a secure sum's vector, a row plan's input), checked before allocating (default 512 MiB).
    max_psu_attempts : int
        The most PSU attempts the client joins per round index, counted across restarts of the node
        and of the round (the count is kept in the ledger; default 3).
    min_psu_cohort : int
        The fewest parties the client accepts in a PSU (default 3: over two parties the union, minus
        one's own set, is the other's set).
    min_choosers : int
        The client uploads a row only if at least this many parties (itself included) mask it *with
        it*: checked against the plan and again, at masking time, against the peers whose shares it
        really holds; a row below it is uploaded as zero with count 0 (default 2; 1 only with
        ``allow_insecure``).
    rr_parameters : RRParameters
        The client's own randomized-response parameters (default the CPP2 preset), the reference a
        suggestion (a Flower run config) is judged against: it is taken only if at least as private in
        both epsilon_1 and epsilon_inf (:meth:`accept_rr`). In process, the parameters a round uses
        are ``ClientState.params`` (the device's own choice); the policy refuses them only for an
        infinite epsilon without ``allow_insecure``.
    epsilon_cap : float
        The client's budget cap (per-index epsilon over its lifetime; default: none). A ledger created
        with a higher cap gets a line lowering it; a suggested cap is taken only if lower.
    allow_insecure : bool
        Accept randomized-response parameters with infinite epsilon (CPP1: the report is the real set).
        and ``min_choosers = 1``. Default False; never set it for real users.
    row_survivor_fraction : float
        A sparse rows' secure sum (protocols/submodel/spec.md, "Sparse rows") is accepted only if its
        degree k keeps a row with this fraction of the parties as honest surviving choosers connected
        except with probability below 2^-40 (a larger k, or the full graph, is always accepted); the
        server learns a row's sum per connected component of those choosers (default 0.05; 0, no
        floor, only with ``allow_insecure``).
    ddp : DDPPolicy
        The client's distributed-DP requirements for its updates (protocols/ddp/spec.md): its minimum
        noise multiplier (it adds at least that much noise whatever the server proposes), the clients
        it assumes collude, its update delta and epsilon cap, and whether a round without DDP is refused.
    """

    adversary: Adversary = Adversary.SEMI_MALICIOUS
    corrupt_fraction: float = 0.05
    min_parties: int = 3
    max_allocation_bytes: int = DEFAULT_ALLOCATION_BYTES
    max_psu_attempts: int = 3
    min_psu_cohort: int = 3
    min_choosers: int = 2
    rr_parameters: RRParameters = field(default_factory=_default_rr)
    epsilon_cap: float = math.inf
    allow_insecure: bool = False
    row_survivor_fraction: float = 0.05
    ddp: DDPPolicy = field(default_factory=DDPPolicy)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "adversary", Adversary(self.adversary))
        except ValueError:
            raise InvalidParameters(f"unknown adversary {self.adversary!r}") from None
        for name, check in _validators().items():
            problem = check(getattr(self, name))
            if problem:
                raise InvalidParameters(f"ClientPolicy.{name}: {problem}")
        if self.min_choosers < 2 and not self.allow_insecure:
            raise InvalidParameters(
                "ClientPolicy.min_choosers = 1 lets a row's count sum reveal who alone chose it; "
                "set allow_insecure=True to accept that"
            )
        if self.row_survivor_fraction == 0 and not self.allow_insecure:
            raise InvalidParameters("ClientPolicy.row_survivor_fraction = 0 accepts any sparse rows' graph; "
                                    "set allow_insecure=True to accept that")
        if math.isinf(self.rr_parameters.epsilon_inf) and not self.allow_insecure:
            raise InvalidParameters(
                "ClientPolicy.rr_parameters give epsilon_inf = infinity (the report reveals the set); "
                "set allow_insecure=True to accept that"
            )

    # -- building ----------------------------------------------------------------------------------

    def replace(self, **changes: Any) -> ClientPolicy:
        """A validated copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    # -- secure sums ---------------------------------------------------------------------------------

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

    # -- PSU -----------------------------------------------------------------------------------------

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

    # -- randomized response and budget ---------------------------------------------------------------

    def check_rr(self, params: RRParameters) -> None:
        """:class:`PolicyViolation` for parameters with infinite epsilon unless ``allow_insecure``."""
        if math.isinf(params.epsilon_inf) and not self.allow_insecure:
            raise PolicyViolation(
                "allow_insecure", "randomized-response parameters with epsilon_inf = infinity (the report reveals the set)"
            )

    def accept_rr(self, suggested: RRParameters | None) -> RRParameters:
        """The parameters to use: ``suggested`` if it is at least as private as the client's own (both
        epsilon_1 and epsilon_inf no larger), the client's own if there is no suggestion; otherwise
        :class:`PolicyViolation`."""
        own = self.rr_parameters
        if suggested is None:
            return own
        self.check_rr(suggested)
        if suggested.epsilon_1 > own.epsilon_1 or suggested.epsilon_inf > own.epsilon_inf:
            raise PolicyViolation(
                "rr_parameters",
                f"the suggested randomized response (epsilon_1={suggested.epsilon_1:.4g}, epsilon_inf="
                f"{suggested.epsilon_inf:.4g}) is less private than the client's own (epsilon_1={own.epsilon_1:.4g}, "
                f"epsilon_inf={own.epsilon_inf:.4g})",
            )
        return suggested

    def accept_cap(self, suggested: float | None) -> float:
        """The cap to use: the smaller of the client's own and ``suggested`` (a cap may only go down)."""
        if suggested is None:
            return self.epsilon_cap
        if not (isinstance(suggested, (int, float)) and not isinstance(suggested, bool) and suggested >= 0):
            raise InvalidParameters("a suggested epsilon cap must be a number >= 0")
        return min(self.epsilon_cap, float(suggested))


def _positive_int(low: int, high: int) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            return f"must be an integer in [{low}, {high}], got {value!r}"
        return None

    return check


def _fraction(value: object) -> str | None:
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value < 1):
        return f"must be in [0, 1), got {value!r}"
    return None


def _cap(value: object) -> str | None:
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0):
        return f"must be a number >= 0 (math.inf for none), got {value!r}"
    return None


def _rr(value: object) -> str | None:
    return None if isinstance(value, RRParameters) else f"must be RRParameters, got {type(value).__name__}"


def _flag(value: object) -> str | None:
    return None if isinstance(value, bool) else f"must be a bool, got {value!r}"


def _validators() -> dict[str, Callable[[object], str | None]]:
    """Checks per field (a field added later registers its check here)."""
    return {
        "corrupt_fraction": _fraction,
        "min_parties": _positive_int(2, MAX_CLIENTS),
        "max_allocation_bytes": _positive_int(1, 1 << 62),
        "max_psu_attempts": _positive_int(1, 64),
        "min_psu_cohort": _positive_int(2, MAX_CLIENTS),
        "min_choosers": _positive_int(1, 1 << 31),
        "rr_parameters": _rr,
        "epsilon_cap": _cap,
        "allow_insecure": _flag,
        "row_survivor_fraction": lambda value: None if (isinstance(value, (int, float)) and not isinstance(value, bool)
                                                        and 0 <= value <= 1) else f"must be in [0, 1], got {value!r}",
        "ddp": lambda value: None if isinstance(value, DDPPolicy) else "must be a DDPPolicy",
    }


def weakened_policy(**changes: Any) -> ClientPolicy:
    """A policy with every bound switched off (curious thresholds, no floors beyond the protocol's own,
    no attempt limit, insecure parameters allowed). Tests of attacks only: it shows that an attack
    works when the client does not defend itself. Never use it for real clients."""
    base = ClientPolicy(
        adversary=Adversary.CURIOUS,
        corrupt_fraction=0.0,
        min_parties=2,
        max_allocation_bytes=1 << 62,
        max_psu_attempts=64,
        min_psu_cohort=2,
        min_choosers=1,
        allow_insecure=True,
        row_survivor_fraction=0.0,
    )
    return dataclasses.replace(base, **changes)
