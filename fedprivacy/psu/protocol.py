"""Private set union of submodel indices over secure aggregation mod p, with reruns on decode failure.

``PSUClient`` validates and encodes a client's real index set (``InvalidParameters`` before anything
is sent); ``PSUServer`` decodes the securely summed sketch into the exact union, or raises
:class:`UnionDecodeFailure` (never a partial union). ``run_psu_round`` runs the whole thing in
process -- secure aggregation with its dropout schedule, decode, and on failure a new attempt with a
fresh key, fresh weights, fresh masks and a table 1.5x larger, as :class:`RerunPolicy` decides (the
one rerun policy: the submodel round's server follows it too).

Dropouts follow secure aggregation: a client whose masked sketch did not arrive (gone before masked
input) is not in the union; one whose sketch arrived is, even if it vanishes before unmasking.

What the server learns: ``protocols/psu/spec.md`` §1 and §4 (the union U, exact up to the
distance stated there).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameters, RoundAborted
from ..hazmat.field import Modulus
from ..hazmat.prg import RandomSource, system_random_bytes
from ..secagg import DropoutSchedule, RoundReport, SecAggConfig, run_secagg_round
from .iblt import encode_set, peel, validate_ids
from .params import PSUParameters
from .policy import PSUPolicy

__all__ = ["PSUClient", "PSUServer", "UnionDecodeFailure", "PSUResult", "RerunPolicy", "run_psu_round"]


class UnionDecodeFailure(RoundAborted):
    """Peeling did not empty the table: rerun with a larger sketch (the partial result is discarded)."""

    def __init__(self, recovered: int, residual_cells: int, estimated_union: float) -> None:
        super().__init__("psu-decode", f"peeling stopped with {residual_cells} non-zero cells")
        self.recovered = recovered
        self.estimated_union = estimated_union

    def next_bound(self, bound: int, sub_table: int | None = None) -> int:
        """A union bound for the rerun: 1.5x larger, and large enough for what the table showed.

        A table with every cell occupied shows only that the union is far too large for it: about
        s (ln s + 0.5772) ids fill each of its sub-tables of s cells (``sub_table``, when given; the
        coupon collector's expectation), which is more than 4 x ``bound`` for any table of a few
        hundred cells, so the rerun is sized for 1.5 x that, and at least 4 x ``bound``."""
        if math.isinf(self.estimated_union):  # every cell occupied: the table was far too small
            filled = 0 if sub_table is None else math.ceil(1.5 * sub_table * (math.log(sub_table) + _EULER_GAMMA))
            return max(4 * bound, filled)
        return max(math.ceil(1.5 * bound), 2 * self.recovered, math.ceil(1.5 * self.estimated_union))


_EULER_GAMMA = 0.5772156649015329


@dataclass(frozen=True)
class RerunPolicy:
    """When a PSU runs its secure sum again (``protocols/psu/spec.md`` §3), for the standalone PSU and
    the submodel round alike.

    An *attempt* is one secure sum started with fresh parameters (``PSUParameters.attempt``: fresh
    keys, weights and masks). Only a decode failure (:class:`UnionDecodeFailure`: the sum completed,
    peeling stopped) leads to a rerun; a secure sum that aborts ends the PSU. After ``max_attempts``
    attempts the failure stands. A rerun's union bound is :meth:`UnionDecodeFailure.next_bound`, never
    above ``max_bound`` (when given: the most ids the round's clients can hold, as a client refuses a
    larger table); after a table with every cell occupied it is ``max_bound`` itself when given. Each
    client also counts its own attempts (``ClientPolicy.max_psu_attempts``)."""

    max_attempts: int = 3
    max_bound: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise InvalidParameters("max_attempts must be a positive integer")
        if self.max_bound is not None and (not isinstance(self.max_bound, int) or self.max_bound < 1):
            raise InvalidParameters("max_bound must be a positive integer")

    def next_attempt(self, params: PSUParameters, failure: UnionDecodeFailure, attempts: int) -> PSUParameters | None:
        """The parameters of the next attempt after ``failure`` of the one run with ``params``, when
        ``attempts`` were started so far; ``None``: no rerun (the failure stands)."""
        if attempts >= self.max_attempts:
            return None
        if math.isinf(failure.estimated_union) and self.max_bound is not None:
            # Every cell occupied bounds the union only from below (its estimate, and each rerun
            # sized from it, can still be far short): the largest table the clients accept holds it.
            bound = self.max_bound
        else:
            bound = failure.next_bound(params.union_bound, params.sub_table)
            if self.max_bound is not None:
                bound = min(bound, self.max_bound)
        return PSUParameters(params.universe, bound, params.session_id, params.attempt + 1)


class PSUClient:
    def __init__(self, params: PSUParameters, ids: object) -> None:
        self.params = params
        self.ids = validate_ids(ids, params.universe)  # raises before anything is sent

    def sketch(self, random_bytes: RandomSource = system_random_bytes) -> np.ndarray:
        return encode_set(self.params, self.ids, random_bytes=random_bytes)


class PSUServer:
    def __init__(self, params: PSUParameters) -> None:
        self.params = params

    def decode(self, summed: np.ndarray) -> np.ndarray:
        result = peel(self.params, summed)
        if not result.success:
            raise UnionDecodeFailure(int(result.ids.shape[0]), result.residual_cells, result.estimated_union)
        return result.ids


@dataclass
class PSUResult:
    union: np.ndarray
    params: PSUParameters
    attempts: int
    contributors: frozenset[int]
    reports: list[RoundReport]
    client_encode_seconds: dict[int, float]


def run_psu_round(
    party_sets: Mapping[int, object],
    params: PSUParameters,
    make_config: Callable[[PSUParameters], SecAggConfig] | None = None,
    schedule: DropoutSchedule | None = None,
    *,
    max_attempts: int = 3,
    random_source: Callable[[int], RandomSource] | None = None,
    observer: Callable[[int, int, bytes], None] | None = None,
    policy: PSUPolicy | None = None,
) -> PSUResult:
    """The whole PSU in process (see the module docstring). ``make_config(params)`` builds each
    attempt's secure-aggregation config (dimension ``params.vector_length``, modulus p); ``observer``
    sees every message's bytes, as in :func:`fedprivacy.secagg.run_secagg_round`.

    ``policy`` is every client's :class:`~fedprivacy.psu.policy.PSUPolicy` (a
    :class:`~fedprivacy.policy.ClientPolicy` is one; default: the safe default):
    an attempt over fewer than ``min_psu_cohort`` parties, beyond ``max_psu_attempts``, or whose secure
    sum or table the policy refuses raises :class:`~fedprivacy.errors.PolicyViolation` before any
    client of that attempt sends anything."""
    import time

    policy = PSUPolicy() if policy is None else policy
    clients = {party: PSUClient(params, ids) for party, ids in party_sets.items()}  # validate everything first
    if make_config is None:
        party_ids = sorted(party_sets)

        def make_config(p: PSUParameters) -> SecAggConfig:
            return SecAggConfig.create(party_ids, p.vector_length, Modulus.P61, dropout_fraction=0.2,
                                       adversary=policy.adversary, corrupt_fraction=policy.corrupt_fraction)

    reports: list[RoundReport] = []
    encode_seconds: dict[int, float] = {}
    rerun = RerunPolicy(max_attempts)
    while True:
        config = make_config(params)
        if config.modulus is not Modulus.P61 or config.dim != params.vector_length:
            raise ValueError("the secure-aggregation config must sum vectors of params.vector_length mod p")
        policy.check_psu_attempt(len(reports))
        policy.check_psu_cohort(config.clients)
        policy.check_allocation(params.vector_length * 8, "the PSU table")

        def sketch(party: int, p: PSUParameters = params) -> np.ndarray:
            started = time.perf_counter()
            source = system_random_bytes if random_source is None else random_source(party)
            vector = encode_set(p, clients[party].ids, random_bytes=source)
            encode_seconds[party] = time.perf_counter() - started
            return vector

        report = run_secagg_round(config, sketch, schedule, observer=observer, policy=policy)
        reports.append(report)
        if report.result is None:
            assert report.aborted is not None
            raise report.aborted
        try:
            union = PSUServer(params).decode(report.result)
        except UnionDecodeFailure as failure:
            following = rerun.next_attempt(params, failure, len(reports))
            if following is None:
                raise
            params = following
            continue
        return PSUResult(union, params, len(reports), report.input_ids, reports, encode_seconds)
