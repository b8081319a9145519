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

Layering: each protocol owns the part of the policy it checks -- the secure sum's limits are
:class:`fedprivacy.secagg.policy.SecAggPolicy`, the PSU's extend them in
:class:`fedprivacy.psu.policy.PSUPolicy` -- and :class:`ClientPolicy` extends those with the
randomized-response, budget and distributed-DP limits. The protocols take their own type (a
``ClientPolicy`` is one) and never import this module, which sits a rank above them.

Extending: the class is a frozen dataclass whose fields all have defaults; add a field with a default
and its check in ``_field_checks`` of the class that owns it (this one, or the protocol's), and
nothing else in the library lists the fields. :meth:`ClientPolicy.replace` builds a changed copy.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .ddp.params import DDPPolicy
from .errors import InvalidParameters, PolicyViolation
from .ldp.params import RRParameters
from .psu.policy import PSUPolicy
from .secagg.params import Adversary
from .secagg.policy import DEFAULT_ALLOCATION_BYTES, FieldCheck

__all__ = ["ClientPolicy", "DEFAULT_ALLOCATION_BYTES", "weakened_policy"]


def _default_rr() -> RRParameters:
    return RRParameters.preset(2)


def _cap(value: object) -> str | None:
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0):
        return f"must be a number >= 0 (math.inf for none), got {value!r}"
    return None


def _rr(value: object) -> str | None:
    return None if isinstance(value, RRParameters) else f"must be RRParameters, got {type(value).__name__}"


def _ddp(value: object) -> str | None:
    return None if isinstance(value, DDPPolicy) else "must be a DDPPolicy"


@dataclass(frozen=True)
class ClientPolicy(PSUPolicy):
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
        are ``DeviceState.params`` (the device's own choice); the policy refuses them only for an
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

    rr_parameters: RRParameters = field(default_factory=_default_rr)
    epsilon_cap: float = math.inf
    ddp: DDPPolicy = field(default_factory=DDPPolicy)

    @classmethod
    def _field_checks(cls) -> dict[str, FieldCheck]:
        return {**super()._field_checks(), "rr_parameters": _rr, "epsilon_cap": _cap, "ddp": _ddp}

    def _check_combinations(self) -> None:
        super()._check_combinations()
        if math.isinf(self.rr_parameters.epsilon_inf) and not self.allow_insecure:
            raise InvalidParameters(
                "ClientPolicy.rr_parameters give epsilon_inf = infinity (the report reveals the set); "
                "set allow_insecure=True to accept that"
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
