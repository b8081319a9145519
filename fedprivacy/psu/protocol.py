"""Private set union of submodel indices over secure aggregation mod p, with reruns on decode failure.

``PSUClient`` validates and encodes a client's real index set (``InvalidParameters`` before anything
is sent); ``PSUServer`` decodes the securely summed sketch into the exact union, or raises
:class:`UnionDecodeFailure` (never a partial union). ``run_psu_round`` runs the whole thing in
process -- secure aggregation with its dropout schedule, decode, and on failure a new attempt with a
fresh key, fresh weights, fresh masks and a table 1.5x larger, at most ``max_attempts`` times.

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

from ..errors import RoundAborted
from ..hazmat.field import Modulus
from ..hazmat.prg import RandomSource, system_random_bytes
from ..secagg import DropoutSchedule, RoundReport, SecAggConfig, run_secagg_round
from .iblt import encode_set, peel, validate_ids
from .params import PSUParameters
from .policy import PSUPolicy

__all__ = ["PSUClient", "PSUServer", "UnionDecodeFailure", "PSUResult", "run_psu_round"]


class UnionDecodeFailure(RoundAborted):
    """Peeling did not empty the table: rerun with a larger sketch (the partial result is discarded)."""

    def __init__(self, recovered: int, residual_cells: int, estimated_union: float) -> None:
        super().__init__("psu-decode", f"peeling stopped with {residual_cells} non-zero cells")
        self.recovered = recovered
        self.estimated_union = estimated_union

    def next_bound(self, bound: int) -> int:
        """A union bound for the rerun: 1.5x larger, and large enough for what the table showed."""
        if math.isinf(self.estimated_union):
            return 4 * bound  # every cell occupied: the table was far too small
        return max(math.ceil(1.5 * bound), 2 * self.recovered, math.ceil(1.5 * self.estimated_union))


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
    for attempt in range(max_attempts):
        config = make_config(params)
        if config.modulus is not Modulus.P61 or config.dim != params.vector_length:
            raise ValueError("the secure-aggregation config must sum vectors of params.vector_length mod p")
        policy.check_psu_attempt(attempt)
        policy.check_psu_cohort(config.clients)
        policy.check_allocation(params.vector_length * 8, "the PSU table")

        def sketch(party: int, p: PSUParameters = params, members: dict[int, PSUClient] = clients) -> np.ndarray:
            started = time.perf_counter()
            source = system_random_bytes if random_source is None else random_source(party)
            vector = encode_set(p, members[party].ids, random_bytes=source)
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
            if attempt + 1 == max_attempts:
                raise
            params = params.retry(minimum_bound=failure.next_bound(params.union_bound))
            clients = {party: PSUClient(params, c.ids) for party, c in clients.items()}
            continue
        return PSUResult(union, params, attempt + 1, report.input_ids, reports, encode_seconds)
    raise AssertionError("unreachable")
