"""The server of the secure submodel round, sans-I/O.

:class:`SubmodelRoundServer` drives one round over a :class:`~fedprivacy.submodel.interfaces.GlobalModel`
(the model owner). A transport calls :meth:`start`, feeds every client message to :meth:`receive`
(which never raises on a client's message: junk, late, duplicate or misplaced messages are recorded
in :attr:`ignored`), and calls :meth:`close_stage` when the stage's replies are in or its deadline
passed (:attr:`expected_ids` says who it still waits for). Each call returns the messages to send.

Stages (:mod:`fedprivacy.submodel.stages`): PSU (a secure sum of the clients' IBLT sketches, the first
table sized for the ceiling n x max_set_size or from the server's union estimate, rerun with a larger
table when the union does not decode; the rows' secure sum is set up alongside its first
attempt, so a round takes 7 exchanges) -> the union to every contributor -> the randomized
sets S''_i -> the plan (rows with fewer than ``min_choosers`` choosers left out; the dense parameters
as pseudo-rows everyone chooses, fixed in the rows' sum), each client's rows, dense parameters and
plan (built as each is sent) -> the rows' secure sum (full graph; sparse above sparse_rows_above parties) -> W_j += sum(count * delta_j) / sum(count_j) for rows with a positive count
sum, theta += the sample-weighted mean.

Sees: U, every S''_i, the per-row sums of count-weighted updates and counts over each row's surviving
choosers, the dense sum, and who dropped when. Leaks (the paper's Theorem 5.5 events): a planned row
with a single surviving chooser exposes that chooser's block (only when its co-choosers drop after
planning), and a zero count sum says that none of a row's choosers holds it. Assumes: the transport
authenticates each client's messages (their ``sender``). Raises: :class:`RoundAborted` from
:meth:`close_stage` when too few parties remain; :class:`LocalProtocolError` when driven out of order.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

import numpy as np

from ..errors import FedPrivacyError, InvalidParameters, LocalProtocolError, RoundAborted
from ..hazmat.field import Modulus
from ..psu.params import PSUParameters
from ..psu.protocol import PSUServer, RerunPolicy, UnionDecodeFailure
from ..secagg import Adversary, Quantizer, RowPlan, SecAggConfig, SecAggServer, TrustStore
from ..secagg.graph import ring_order
from ..secagg.identity import joint_advertisement_statement
from ..secagg.params import find_graph_parameters
from ..secagg.rowgraph import row_graph_degree, row_graph_survivors
from ..secagg.rows import rows_in_use, sparse_row_peel
from ..secagg.server import IgnoredMessage, IgnoredReason
from ..secagg.stages import ServerStage
from ..secagg.unmasking import UnmaskingWorkers
from .interfaces import GlobalModel
from .messages import (
    Phase,
    PhaseMessage,
    RandomizedSetReport,
    RoundStart,
    RowDownload,
    SitOut,
    SubmodelMessage,
    UnionBroadcast,
)
from .settings import RoundSettings
from .stages import ROUND_SERVER_TRANSITIONS, RoundServerEvent, RoundServerStage

__all__ = ["LazyOutbound", "PSU_HEADROOM", "SubmodelOutbound", "RoundResult", "SubmodelRoundServer", "first_psu_bound"]

# The first PSU table's bound over the server's union estimate (the last round's union size):
# protocols/submodel/spec.md, "First PSU table".
PSU_HEADROOM = 1.25


@dataclass(frozen=True, slots=True)
class SubmodelOutbound:
    """A message for one party (the same :class:`UnionBroadcast` object goes to every contributor)."""

    recipient: int
    message: SubmodelMessage


@dataclass
class RoundResult:
    """What the server knows after the round (all of it public to the server anyway)."""

    union: np.ndarray
    psu_attempts: int
    psu_contributors: frozenset[int]
    sat_out: frozenset[int]  # sent SitOut (over the set-size cap or refused by the budget filter)
    chosen: dict[int, np.ndarray]  # the randomized sets S''_i
    thin_rows: int  # rows of the S''_i chosen by fewer than min_choosers clients (never uploaded)
    planned_rows: np.ndarray  # real rows in the plan
    rows_updated: int  # planned rows with a positive count sum
    contributors: frozenset[int]  # whose upload is in the sums
    row_sharers: frozenset[int] = frozenset()  # whose shares were routed in the rows' sum (a client masks with these)
    ignored: list[IgnoredMessage] = field(default_factory=list)
    # For benches (what the server's work was): the last PSU attempt's config, sharers (U2) and table
    # decode time, and the rows' config.
    psu_config: SecAggConfig | None = None
    psu_sharers: frozenset[int] = frozenset()
    psu_decode_seconds: float = 0.0
    rows_config: SecAggConfig | None = None
    psu_bounds: tuple[int, ...] = ()  # each PSU attempt's union bound, the first one first
    psu_ceiling: int = 0  # the most ids the parties can hold: min(n x max_set_size, universe)


class LazyOutbound(Sequence[SubmodelOutbound]):
    """The messages of a stage, each built when read (the row downloads: n plans and row blocks are
    never held at once). Reading an item twice builds it twice; ``recipients`` are in order."""

    def __init__(self, recipients: list[int], build: Callable[[int], SubmodelOutbound]) -> None:
        self.recipients = recipients
        self._build = build

    def __len__(self) -> int:
        return len(self.recipients)

    @overload
    def __getitem__(self, index: int) -> SubmodelOutbound: ...

    @overload
    def __getitem__(self, index: slice) -> list[SubmodelOutbound]: ...

    def __getitem__(self, index: int | slice) -> SubmodelOutbound | list[SubmodelOutbound]:
        if isinstance(index, slice):
            return [self._build(p) for p in self.recipients[index]]
        return self._build(self.recipients[index])

    def __iter__(self) -> Iterator[SubmodelOutbound]:
        return (self._build(p) for p in self.recipients)


def rows_degree(settings: RoundSettings, parties: int) -> int | None:
    """The rows' graph degree for ``parties``: None (the full graph) up to ``sparse_rows_above``
    parties; above, the larger of the degree that keeps a row's ``row_survivor_fraction`` x n honest
    surviving choosers connected (claim submodel/2) and the SecAgg+ search's for the round's rates,
    unless that is the full graph anyway (protocols/submodel/spec.md, "Sparse rows")."""
    if parties <= settings.sparse_rows_above:
        return None
    degree = row_graph_degree(parties, row_graph_survivors(parties, settings.row_survivor_fraction))
    if degree < parties - 1:
        search = find_graph_parameters(parties, settings.corrupt_fraction, settings.dropout_fraction, settings.adversary)
        degree = max(degree, search.neighbours)
    return None if degree >= parties - 1 else degree


def first_psu_bound(settings: RoundSettings, parties: int, union_estimate: int | None = None,
                    headroom: float = PSU_HEADROOM) -> int:
    """The first PSU table's union bound for ``parties`` parties: the ceiling
    ``settings.psu_bound(parties)`` (the most ids they can hold) without an estimate; with one (the
    last round's union size) ``ceil(headroom x estimate)``, at least 1 and never above the ceiling. A
    union larger than that is still decoded when the table peels, and a table that does not peel is
    rerun larger (``protocols/submodel/spec.md``, "First PSU table")."""
    ceiling = settings.psu_bound(parties)
    if union_estimate is None:
        return ceiling
    if isinstance(union_estimate, bool) or not isinstance(union_estimate, (int, np.integer)) or union_estimate < 0:
        raise InvalidParameters(f"a union estimate must be an integer >= 0, got {union_estimate!r}")
    if not (isinstance(headroom, (int, float)) and 1.0 <= headroom <= 64.0):
        raise InvalidParameters(f"the PSU headroom must be in [1, 64], got {headroom!r}")
    return max(1, min(ceiling, math.ceil(headroom * int(union_estimate))))


class SubmodelRoundServer:
    """Server side of one round (see the module docstring)."""

    def __init__(
        self,
        model: GlobalModel,
        settings: RoundSettings,
        party_ids: list[int] | tuple[int, ...],
        round_index: int,
        *,
        session_id: bytes | None = None,
        trust: TrustStore | None = None,
        union_estimate: int | None = None,
        psu_first_bound: int | None = None,
        workers: UnmaskingWorkers | None = None,
    ) -> None:
        """``trust`` (malicious mode, ``settings.adversary``): the deployment's trust store, with which
        the secure sums check the clients' signatures and ignore bad ones (clients check them anyway).

        The first PSU table's bound: ``psu_first_bound`` when given (1 to the ceiling
        ``settings.psu_bound(n)``), else :func:`first_psu_bound` of ``union_estimate`` (the server's
        estimate of the union, e.g. the last round's size: ``PSU_HEADROOM`` x it), else the ceiling.
        Public and the server's own choice: a smaller table can only fail to peel and be rerun, which
        the server could claim anyway (``protocols/submodel/spec.md``, "First PSU table").
        ``workers``: local worker processes for both secure sums' unmasking
        (:class:`~fedprivacy.secagg.unmasking.UnmaskingWorkers`: they receive rebuilt secrets, so only
        the server's own processes); default: this thread."""
        parties = tuple(sorted(int(p) for p in party_ids))
        if len(parties) < 2 or len(set(parties)) != len(parties):
            raise InvalidParameters("a round needs at least two distinct parties")
        ceiling = settings.psu_bound(len(parties))
        if psu_first_bound is not None:
            if union_estimate is not None:
                raise InvalidParameters("give the first PSU bound or a union estimate, not both")
            if (isinstance(psu_first_bound, bool) or not isinstance(psu_first_bound, (int, np.integer))
                    or not 1 <= psu_first_bound <= ceiling):
                raise InvalidParameters(f"the first PSU bound must be an integer in [1, {ceiling}] (the most ids "
                                        f"{len(parties)} parties can hold), got {psu_first_bound!r}")
            first_bound = int(psu_first_bound)
        else:
            first_bound = first_psu_bound(settings, len(parties), union_estimate)
        # Settings that cannot work are refused before any client spends budget: the quantizer's
        # overflow budget is checked for every party of the round (an upper bound on the summands).
        Quantizer(settings.modulus, settings.clip, len(parties), max_weight=float(settings.max_samples))
        if not isinstance(model.row_width, int) or not 1 <= model.row_width < 1 << 16:
            raise InvalidParameters("the model's row width must be in [1, 65535]")
        self.model = model
        self.settings = settings
        self.party_ids = parties
        self.round_index = round_index
        self.stage = RoundServerStage.CREATED
        self.ignored: list[IgnoredMessage] = []
        self.abort_error: RoundAborted | None = None
        self.result: RoundResult | None = None
        self._session_id = os.urandom(32) if session_id is None else session_id
        self._trust = trust if settings.adversary is Adversary.MALICIOUS else None
        self._workers = workers
        self._width = model.row_width
        self._dense_size = int(model.dense_size)
        self._dense_rows = -(-self._dense_size // self._width)
        self._sat_out: set[int] = set()
        self._psu_params: PSUParameters | None = None
        self.psu_ceiling = ceiling
        self.psu_first_bound = first_bound  # public: every client sees it in RoundStart
        self._psu_bounds: list[int] = []
        self._psu_attempts = 0
        self._psu: SecAggServer | None = None
        self._union = np.zeros(0, dtype=np.uint64)
        self._contributors: frozenset[int] = frozenset()
        self._reports: dict[int, np.ndarray] = {}
        self._report_positions: dict[int, np.ndarray] = {}  # each report's ids as positions in the union
        self._rows: SecAggServer | None = None  # set up with the PSU's first attempt, its plan fixed later
        self._rows_config: SecAggConfig | None = None
        self._quantizer: Quantizer | None = None
        self._kept_rows = np.zeros(0, dtype=np.uint64)
        self._thin_rows = 0
        self._psu_config: SecAggConfig | None = None
        self._psu_sharers: frozenset[int] = frozenset()
        self._psu_decode_seconds = 0.0

    # -- views ----------------------------------------------------------------------------------

    @property
    def union(self) -> np.ndarray:
        return self._union

    @property
    def expected_ids(self) -> frozenset[int]:
        """Who the current stage still waits for (a transport may close it early when empty)."""
        if self.stage is RoundServerStage.PSU and self._psu is not None:
            rows = self._rows.expected_ids if self._rows is not None and self._rows_in_setup() else frozenset()
            return (self._psu.expected_ids | rows) - self._sat_out
        if self.stage is RoundServerStage.COLLECTING_REPORTS:
            return self._contributors - self._reports.keys() - self._sat_out
        if self.stage is RoundServerStage.AGGREGATING and self._rows is not None:
            return self._rows.expected_ids
        return frozenset()

    @property
    def phase_stage(self) -> ServerStage | None:
        """The stage of the secure sum in progress (PSU or rows), if any."""
        inner = self._psu if self.stage is RoundServerStage.PSU else self._rows
        return None if inner is None else inner.stage

    # -- driving --------------------------------------------------------------------------------

    def start(self) -> list[SubmodelOutbound]:
        self._move(RoundServerEvent.START)
        settings = self.settings
        # The table is sized from public numbers only (never from this round's private sets): the ceiling,
        # or the server's estimate of the union (an earlier round's, which the server already knows).
        self._psu_params = PSUParameters(settings.universe, self.psu_first_bound, self._session_id)
        # The rows' secure sum is set up alongside the PSU's (keys advertised and shared in the same
        # exchanges), over the same parties; its dim is the rows' block width, its plan comes later.
        try:
            neighbours = self._rows_degree()
            self._rows_config = SecAggConfig.create(
                list(self.party_ids), self._width + 1, settings.modulus, full_graph=neighbours is None,
                neighbours=neighbours, round_index=self.round_index,
                dropout_fraction=settings.dropout_fraction, corrupt_fraction=settings.corrupt_fraction,
                adversary=settings.adversary,
            )
        except InvalidParameters as exc:
            raise self._abort(RoundAborted("psu", f"no secure sum fits {len(self.party_ids)} parties: {exc}")) from exc
        # Malicious mode: its advertisements and the PSU's first ones carry one joint signature
        # (protocols/secagg/spec.md §14.8), checked here when both are in (_pair_advertisements).
        joint = "verifying" if settings.adversary is Adversary.MALICIOUS else None
        self._rows = SecAggServer(self._rows_config, trust=self._trust, per_row=True, joint=joint, workers=self._workers)
        self.stage = RoundServerStage.PSU
        return self._start_psu(self.party_ids)

    def _rows_degree(self) -> int | None:
        return rows_degree(self.settings, len(self.party_ids))

    def _start_psu(self, parties: tuple[int, ...]) -> list[SubmodelOutbound]:
        assert self._psu_params is not None
        try:
            config = SecAggConfig.create(
                list(parties), self._psu_params.vector_length, Modulus.P61, round_index=self.round_index,
                dropout_fraction=self.settings.dropout_fraction, corrupt_fraction=self.settings.corrupt_fraction,
                adversary=self.settings.adversary,
            )
        except InvalidParameters as exc:
            raise self._abort(RoundAborted("psu", f"no secure sum fits {len(parties)} parties: {exc}")) from exc
        first = self._psu_attempts == 0 and self.settings.adversary is Adversary.MALICIOUS
        self._psu = SecAggServer(config, trust=self._trust, joint="covered" if first else None, workers=self._workers)
        self._psu_attempts += 1
        self._psu_bounds.append(self._psu_params.union_bound)
        public = self.settings.public()
        assert self._rows_config is not None
        return [SubmodelOutbound(p, RoundStart(p, self.round_index, public, self._psu_params, config, self._rows_config))
                for p in parties]

    def receive(self, message: SubmodelMessage) -> None:
        """Consume one client message (its sender authenticated by the transport). Never raises on
        what a client sent; anything out of place is recorded in :attr:`ignored`."""
        sender = int(getattr(message, "sender", 0))
        if sender not in self.party_ids:
            return self._ignore(sender, message, IgnoredReason.UNKNOWN_PARTY)
        if isinstance(message, PhaseMessage):
            event = RoundServerEvent.PSU_MESSAGE if message.phase is Phase.PSU else RoundServerEvent.ROWS_MESSAGE
        elif isinstance(message, RandomizedSetReport):
            event = RoundServerEvent.REPORT
        elif isinstance(message, SitOut):
            event = RoundServerEvent.SIT_OUT
        else:
            return self._ignore(sender, message, IgnoredReason.INVALID, "not a client message")
        if (self.stage, event) not in ROUND_SERVER_TRANSITIONS:
            return self._ignore(sender, message, IgnoredReason.LATE)
        if event is RoundServerEvent.SIT_OUT:
            assert isinstance(message, SitOut)
            if message.round_index != self.round_index:
                return self._ignore(sender, message, IgnoredReason.INVALID, "another round")
            self._sat_out.add(sender)
            return None
        if event is RoundServerEvent.REPORT:
            assert isinstance(message, RandomizedSetReport)
            return self._on_report(sender, message)
        assert isinstance(message, PhaseMessage)
        if event is RoundServerEvent.ROWS_MESSAGE and self.stage is RoundServerStage.PSU:
            # The rows' keys and shares travel with the PSU's first attempt (and only then).
            if not self._rows_in_setup():
                return self._ignore(sender, message, IgnoredReason.LATE, "the rows' setup is closed")
        inner = self._psu if event is RoundServerEvent.PSU_MESSAGE else self._rows
        attempt = self._psu_params.attempt if event is RoundServerEvent.PSU_MESSAGE and self._psu_params else 0
        if inner is None or message.attempt != attempt:
            return self._ignore(sender, message, IgnoredReason.LATE, "another attempt")
        if sender in self._sat_out:
            return self._ignore(sender, message, IgnoredReason.LATE, "sat out")
        inner.receive(message.payload)
        return None

    def _on_report(self, sender: int, message: RandomizedSetReport) -> None:
        if sender not in self._contributors:
            return self._ignore(sender, message, IgnoredReason.INVALID, "not a PSU contributor")
        if message.round_index != self.round_index:
            return self._ignore(sender, message, IgnoredReason.INVALID, "another round")
        if sender in self._reports or sender in self._sat_out:
            return self._ignore(sender, message, IgnoredReason.DUPLICATE)
        ids = np.asarray(message.ids, dtype=np.uint64)  # increasing (decoded), as is the union
        where = np.minimum(np.searchsorted(self._union, ids), max(self._union.shape[0] - 1, 0))
        if ids.size and (self._union.shape[0] == 0 or not bool(np.array_equal(self._union[where], ids))):
            return self._ignore(sender, message, IgnoredReason.INVALID, "ids outside the union")
        self._reports[sender] = ids
        self._report_positions[sender] = where
        return None

    def close_stage(self) -> Sequence[SubmodelOutbound]:
        """Close the current stage; returns the next messages. Raises :class:`RoundAborted` (and stays
        aborted) when the round cannot go on."""
        allowed = ROUND_SERVER_TRANSITIONS.get((self.stage, RoundServerEvent.CLOSE_STAGE))
        if allowed is None:
            raise LocalProtocolError(f"nothing to close in stage {self.stage.value}")
        closer = {
            RoundServerStage.PSU: self._close_psu,
            RoundServerStage.COLLECTING_REPORTS: self._close_reports,
            RoundServerStage.AGGREGATING: self._close_rows,
        }[self.stage]
        try:
            out = closer()
        except RoundAborted as exc:
            raise self._abort(exc) from None
        assert self.stage in allowed
        return out

    # -- stages ---------------------------------------------------------------------------------

    def _close_psu(self) -> list[SubmodelOutbound]:
        assert self._psu is not None and self._psu_params is not None and self._rows is not None
        inner, rows = self._psu, self._rows
        lockstep = self._rows_in_setup()  # the rows' setup closes with the PSU's first two stages
        joint_keys = lockstep and inner.joint == "covered" and inner.stage is ServerStage.COLLECTING_KEYS
        if joint_keys:
            self._pair_advertisements(inner, rows)
        out = inner.close_stage()  # RoundAborted propagates
        attempt = self._psu_params.attempt
        if inner.stage is not ServerStage.COMPLETED:
            wrapped = [SubmodelOutbound(o.recipient, PhaseMessage(Phase.PSU, attempt, o.message)) for o in out]
            if lockstep:
                rows_out = [SubmodelOutbound(o.recipient, PhaseMessage(Phase.ROWS, 0, o.message)) for o in rows.close_stage()]
                # stable: each party's PSU message first -- but the rows' jointly signed key broadcast
                # before the PSU's unsigned one, whose keys the client checks against it
                wrapped = rows_out + wrapped if joint_keys else wrapped + rows_out
                wrapped.sort(key=lambda o: o.recipient)
            return wrapped
        started = time.perf_counter()
        try:
            union = PSUServer(self._psu_params).decode(inner.result)
        except UnionDecodeFailure as failure:
            following = self._next_psu_params(failure)
            if following is None:
                raise
            self._psu_params = following
            return self._start_psu(tuple(sorted(inner.input_ids - self._sat_out)))
        # Accepted whatever its size against the table's nominal bound: a peel that empties the table
        # is the exact union (a union above the bound still decodes up to ~cells / 1.22 ids).
        self._psu_decode_seconds = time.perf_counter() - started
        self._psu_config, self._psu_sharers = inner.config, inner.shared_ids
        self._union = union
        self.ignored.extend(inner.ignored)
        self._contributors = frozenset(inner.input_ids)
        self._psu = None  # its routed shares and sums are no longer needed
        self.stage = RoundServerStage.COLLECTING_REPORTS
        broadcast = UnionBroadcast(self.round_index, union)
        return [SubmodelOutbound(p, broadcast) for p in sorted(self._contributors)]

    def _close_reports(self) -> Sequence[SubmodelOutbound]:
        settings, width = self.settings, self._width
        assert self._rows is not None and self._rows_config is not None
        # Only parties whose rows' shares were routed can mask (and be masked with) in the rows' sum.
        sharers = self._rows.shared_ids
        chosen = {p: ids for p, ids in sorted(self._reports.items()) if p not in self._sat_out and p in sharers}
        if len(chosen) < 2:
            raise RoundAborted("reports", f"{len(chosen)} randomized sets arrived, at least 2 are needed")
        # Each union row's chooser count from the reports' positions in the union (found when they
        # arrived), no sort; per report which of its rows are kept (its ids are increasing, so are those).
        positions = np.concatenate([self._report_positions[p] for p in chosen])
        choosers = np.bincount(positions, minlength=self._union.shape[0])
        keep = choosers >= settings.min_choosers
        kept_flags = keep[positions]
        kept = self._union[keep]
        dense_ids = np.arange(settings.universe, settings.universe + self._dense_rows, dtype=np.uint64)
        cuts = np.cumsum([rows.shape[0] for rows in chosen.values()])[:-1]
        real = {p: rows[flags] for (p, rows), flags in zip(chosen.items(), np.split(kept_flags, cuts))}
        config = self._rows_config
        ring = None
        known = None
        if not config.full_graph:  # sparse rows: a chooser keeps a row while min_choosers - 1 neighbours do
            ring = ring_order(config)
            real = sparse_row_peel(real, ring, config.neighbours, settings.min_choosers - 1, union=kept)
            kept = rows_in_use(real, kept)
        else:  # each planned row's position in the plan, from its report's position in the union
            rank = np.cumsum(keep) - 1  # a kept union row's position among the kept rows
            dense_at = np.arange(kept.shape[0], kept.shape[0] + self._dense_rows, dtype=np.int64)
            known = {p: np.concatenate([rank[where[flags]], dense_at]) for (p, where), flags in
                     zip(((p, self._report_positions[p]) for p in chosen), np.split(kept_flags, cuts))}
        planned = {p: np.concatenate([rows, dense_ids]) for p, rows in real.items()}
        if self._dense_rows:  # every party of the rows' sum masks the dense rows; those without a download drop
            planned.update({p: dense_ids for p in sorted(sharers) if p not in planned})
        plan = RowPlan(np.concatenate([kept, dense_ids]), width + 1, planned, ring=ring, neighbours=config.neighbours,
                       known=known)
        # Sized for the rows' sum's parties (an upper bound on the uploads), as the clients size it.
        if settings.ddp is None:
            self._quantizer = Quantizer(settings.modulus, settings.clip, config.clients, max_weight=float(settings.max_samples))
        else:  # weights are count / max_samples, everything at the DDP scale (protocols/ddp/spec.md)
            self._quantizer = Quantizer(settings.modulus, settings.clip, config.clients, max_weight=1.0, scale=settings.ddp.scale)
        self._rows.set_row_plan(plan)
        self._kept_rows = kept
        self._thin_rows = int(((choosers > 0) & ~keep).sum()) + int(keep.sum()) - int(kept.shape[0])
        self._report_positions.clear()
        self._reports = chosen
        dense = np.zeros(self._dense_size, dtype=np.float64)
        dense[:] = np.asarray(self.model.dense(), dtype=np.float64).reshape(-1)[: self._dense_size]
        model, dense_rows, round_index = self.model, self._dense_rows, self.round_index

        def download(party: int) -> SubmodelOutbound:  # built when delivered: one party's rows at a time
            rows = planned[party]
            real = rows[: rows.shape[0] - dense_rows]
            values = np.asarray(model.rows(real), dtype=np.float64).reshape(real.shape[0], width)
            return SubmodelOutbound(party, RowDownload(party, round_index, config, plan.for_client(party), dense_rows, values, dense))

        self.stage = RoundServerStage.AGGREGATING
        return LazyOutbound(sorted(chosen), download)

    def _close_rows(self) -> list[SubmodelOutbound]:
        assert self._rows is not None and self._quantizer is not None
        inner = self._rows
        out = inner.close_stage()
        if inner.stage is not ServerStage.COMPLETED:
            return [SubmodelOutbound(o.recipient, PhaseMessage(Phase.ROWS, 0, o.message)) for o in out]
        width = self._width
        sums, counts = self._quantizer.decode_rows(inner.result.reshape(-1, width + 1))
        kept = self._kept_rows
        row_sums, row_counts = sums[: kept.shape[0]], counts[: kept.shape[0]]
        # Under distributed DP the weight sums are noisy: a row is applied only when its noisy weight
        # exceeds twice the target noise's standard deviation (post-processing; no privacy cost).
        floor = 0.0 if self.settings.ddp is None else 2.0 * self.settings.ddp.noise_multiplier * self.settings.ddp.l2_clip
        trained = row_counts > floor
        self.model.apply_row_updates(kept[trained], row_sums[trained] / row_counts[trained][:, None])
        if self._dense_rows and counts[-1] > floor:
            dense_sum = sums[kept.shape[0]:].reshape(-1)[: self._dense_size]
            self.model.apply_dense_update(dense_sum / counts[-1])
        self.result = RoundResult(
            union=self._union,
            psu_attempts=self._psu_attempts,
            psu_contributors=self._contributors,
            sat_out=frozenset(self._sat_out),
            chosen=self._reports,
            thin_rows=self._thin_rows,
            planned_rows=kept,
            rows_updated=int(trained.sum()),
            contributors=frozenset(inner.input_ids),
            row_sharers=frozenset(inner.shared_ids),
            ignored=self.ignored + [*inner.ignored],
            psu_config=self._psu_config,
            psu_sharers=self._psu_sharers,
            psu_decode_seconds=self._psu_decode_seconds,
            rows_config=self._rows_config,
            psu_bounds=tuple(self._psu_bounds),
            psu_ceiling=self.psu_ceiling,
        )
        self._rows = None
        self.stage = RoundServerStage.COMPLETED
        return []

    # -- helpers --------------------------------------------------------------------------------

    def _next_psu_params(self, failure: UnionDecodeFailure) -> PSUParameters | None:
        """The rerun after a table that did not peel (``fedprivacy.psu.RerunPolicy``: larger, from the
        failed table's occupancy), never above the most ids the round's clients can hold (they refuse
        a larger table); None after ``max_psu_attempts`` attempts."""
        assert self._psu_params is not None
        rerun = RerunPolicy(self.settings.max_psu_attempts, self.psu_ceiling)
        return rerun.next_attempt(self._psu_params, failure, self._psu_attempts)

    def _pair_advertisements(self, psu: SecAggServer, rows: SecAggServer) -> None:
        """Malicious mode, first PSU attempt: each party's PSU and rows advertisements carry one joint
        signature over both key pairs. A party with only one of the two, two different signatures, or
        (with a trust store) a joint signature that does not verify is left out of both sums (so a
        corrupt client cannot make honest ones abort); the rows' broadcast carries the PSU keys."""
        psu_ads, rows_ads = psu.advertisements, rows.advertisements
        for party in sorted(psu_ads.keys() | rows_ads.keys()):
            first, second = psu_ads.get(party), rows_ads.get(party)
            valid = first is not None and second is not None and first[2] == second[2]
            if valid and self._trust is not None:
                assert first is not None and second is not None
                statement = joint_advertisement_statement(psu.config, rows.config, party, first[:2], second[:2])
                valid = self._trust.verify(party, second[2], statement)
            if not valid:
                for inner, ads in ((psu, psu_ads), (rows, rows_ads)):
                    if party in ads:
                        inner.reject_advertisement(party, "no valid joint advertisement of both sums")
        rows.set_partner_keys({party: psu_ads[party][:2] for party in rows.advertisements})

    def _rows_in_setup(self) -> bool:
        """Whether the rows' sum is at the same setup stage (keys or shares) as the PSU's sum."""
        psu, rows = self._psu, self._rows
        return (psu is not None and rows is not None and rows.stage is psu.stage
                and rows.stage in (ServerStage.COLLECTING_KEYS, ServerStage.COLLECTING_SHARES))

    def _move(self, event: RoundServerEvent) -> None:
        allowed = ROUND_SERVER_TRANSITIONS.get((self.stage, event))
        if allowed is None:
            raise LocalProtocolError(f"{event.value} is not allowed in stage {self.stage.value}")

    def _ignore(self, sender: int, message: object, reason: IgnoredReason, detail: str = "") -> None:
        self.ignored.append(IgnoredMessage(sender, type(message).__name__, reason, detail))

    def _abort(self, error: FedPrivacyError) -> RoundAborted:
        if not isinstance(error, RoundAborted):
            error = RoundAborted(self.stage.value, str(error))
        self.stage = RoundServerStage.ABORTED
        self.abort_error = error
        self._psu = self._rows = None
        self._reports.clear()
        self._report_positions.clear()
        return error
