"""The in-process engine (the embedded default): one secure submodel round with N clients in one process.

It runs the sans-I/O parties of :mod:`fedprivacy.submodel` -- one
:class:`~fedprivacy.submodel.server.SubmodelRoundServer` and a
:class:`~fedprivacy.submodel.client.SubmodelRoundClient` per client -- over the loopback transport
(:mod:`fedprivacy.loopback`): every message is encoded to bytes and decoded on the other side (so
every run exercises the wire format), delivered in a fixed order, and the server closes each stage
once every delivered message was answered. A scripted
:class:`RoundDrops` makes clients vanish just before a given message; a client that aborts (a
protocol violation it detected, an invalid training result) is gone from then on too. This is what
``fedprivacy simulate`` and ``fedprivacy bench round`` run; the Flower adapter drives the same
parties over Flower's Message API instead.

The engine does no I/O itself; a client's ledger and memo go to its ``DeviceState.store`` (files for
``ClientStore``) inside the client's step, before its randomized set is handed over.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

import numpy as np

from ..accounting import replay
from ..errors import FedPrivacyError
from ..hazmat.prg import RandomSource, system_random_bytes
from ..loopback import Delivery, InProcessHost, LinkCounters, Loopback
from ..secagg import TrustStore
from ..secagg.driver import DropoutSchedule
from ..secagg.stages import STEP_OF_SERVER_STAGE, SecAggStep
from ..secagg.unmasking import UnmaskingWorkers
from .client import DeviceState, SubmodelRoundClient
from .interfaces import GlobalModel
from .messages import Phase, PhaseMessage, RandomizedSetReport, SitOut, SubmodelMessage, decode_submodel_message
from .server import RoundResult, SubmodelRoundServer
from .settings import RoundSettings
from .stages import RoundServerStage

__all__ = ["ClientSummary", "Delivery", "InProcessClients", "RoundDrops", "SubmodelRoundOutcome", "run_round", "stage_label"]


@dataclass(frozen=True)
class RoundDrops:
    """Scripted dropouts: a client vanishes just before sending the named step's message of the PSU's
    secure sum (``psu``), its randomized set (``after_psu``), or the named step's message of the rows'
    sum (``upload``). In malicious mode a client dropped at ``UNMASK`` still signs the survivor set."""

    psu: Mapping[int, SecAggStep] = field(default_factory=dict)
    after_psu: frozenset[int] = frozenset()
    upload: Mapping[int, SecAggStep] = field(default_factory=dict)

    def vanishes_before(self, party: int, message: SubmodelMessage) -> bool:
        if isinstance(message, PhaseMessage):
            schedule = self.psu if message.phase is Phase.PSU else self.upload
            return DropoutSchedule(schedule).vanishes_before(party, message.payload)
        return isinstance(message, (RandomizedSetReport, SitOut)) and party in self.after_psu


@dataclass
class SubmodelRoundOutcome:
    union_size: int
    participants: int  # clients whose upload is in the sums
    refused: list[int]  # sat out: their budget filter said no
    thin_rows: int
    rows_updated: int
    chosen_mean: float
    upload_bytes_median: float  # every byte a surviving client sent this round
    download_bytes_median: float  # every byte it received
    psu_seconds: float  # start to union (clients and server, in process)
    ldp_seconds: float  # union delivery, randomized response and the reports
    aggregation_seconds: float  # plan, row downloads and the rows' secure sum, local training excluded
    server_seconds: float  # its calls, the encoding of its messages and the building of lazy ones (row downloads)
    client_seconds_median: float  # protocol work of a surviving client, local training excluded
    epsilon_spent_max: float
    contributors: frozenset[int]
    oversized: list[int] = field(default_factory=list)  # clients over max_set_size (sat the round out)
    training_seconds: float = 0.0  # local training (all clients)
    chosen: dict[int, np.ndarray] = field(default_factory=dict)  # the randomized sets (known to the server)
    planned_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    client_errors: dict[int, FedPrivacyError] = field(default_factory=dict)
    result: RoundResult | None = None
    exchanges: int = 0  # server-to-clients exchanges the round took (each answered by the clients)
    psu_first_bound: int = 0  # the first PSU table's union bound (the ceiling, or from the union estimate)
    psu_attempts: int = 1  # PSU attempts the round took (more than 1: the union did not decode at first)
    # server_seconds split by the round's step (stage_label) and work ("start", "receive", "close", "send")
    server_steps: dict[str, dict[str, float]] = field(default_factory=dict)


def _session_of(message: SubmodelMessage) -> str:
    """The observer's name for a message's session."""
    if isinstance(message, PhaseMessage):
        return "psu" if message.phase is Phase.PSU else "rows"
    return "report" if isinstance(message, RandomizedSetReport) else "round"


@dataclass
class ClientSummary:
    """A client's end of round, for the outcome (its state is written back into the caller's)."""

    state: DeviceState
    sat_out_reason: str | None
    training_seconds: float


class InProcessClients(InProcessHost):
    """The clients of a round in this process (the engine's default host; a Ray actor holds one too):
    :class:`~fedprivacy.submodel.client.SubmodelRoundClient` objects over the loopback, their local
    training excluded from their protocol seconds."""

    def __init__(self, states: Mapping[int, DeviceState], drops: RoundDrops,
                 random_source: Callable[[int], RandomSource] | None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self._clients = {p: SubmodelRoundClient(s, p, random_bytes=system_random_bytes if random_source is None
                                                else random_source(p)) for p, s in states.items()}
        for client in self._clients.values():
            client.clock = clock  # times the protocol and the training (both excluded alike)
        super().__init__({p: c.receive for p, c in self._clients.items()}, decode_submodel_message,
                         vanishes=drops.vanishes_before, excluded=lambda p: self._clients[p].training_seconds,
                         clock=clock)

    def finish(self) -> dict[int, ClientSummary]:
        return {p: ClientSummary(c.state, c.sat_out_reason, c.training_seconds) for p, c in self._clients.items()}


class ClientHost(Protocol):
    """Where a round's clients run: hands them messages in batches and reports how they ended."""

    batch: int

    def deliver(self, items: list[tuple[int, bytes | None]]) -> list[Delivery]: ...

    def finish(self) -> dict[int, ClientSummary]: ...


ClientHostFactory = Callable[[Mapping[int, DeviceState], RoundDrops, "Callable[[int], RandomSource] | None"], ClientHost]


def stage_label(server: SubmodelRoundServer) -> str:
    """The round's stage for progress and logs: ``psu:advertise`` ... ``aggregating:unmask`` (the secure
    sum's step, :class:`~fedprivacy.secagg.stages.SecAggStep`, after the round's stage)."""
    inner = server.phase_stage
    if inner is None:
        return server.stage.value
    step = STEP_OF_SERVER_STAGE.get(inner)
    return f"{server.stage.value}:{inner.value if step is None else step.value}"


def _bucket(stage: RoundServerStage) -> str:
    """Where a stage's seconds go in the outcome: the PSU, the randomized sets, or the aggregation."""
    if stage in (RoundServerStage.CREATED, RoundServerStage.PSU):
        return "psu"
    return "ldp" if stage is RoundServerStage.COLLECTING_REPORTS else "aggregation"


def run_round(
    states: Mapping[int, DeviceState],
    server: GlobalModel,
    settings: RoundSettings,
    round_index: int,
    drops: RoundDrops | None = None,
    observer: Callable[[str, int, int, bytes], None] | None = None,
    random_source: Callable[[int], RandomSource] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    executor: ClientHostFactory | None = None,
    trust: TrustStore | None = None,
    clock: Callable[[], float] = time.perf_counter,
    union_estimate: int | None = None,
    psu_first_bound: int | None = None,
    server_workers: UnmaskingWorkers | None = None,
) -> SubmodelRoundOutcome:
    """Run one round: updates ``server``'s model and the clients' ledgers and memos in place.

    ``observer(session, sender, recipient, data)`` sees the bytes of every message (session "round",
    "psu", "report" or "rows"; the server is party 0) -- for transcripts and proofs.
    ``random_source(party)`` gives each client its randomness (default: the OS CSPRNG); seeded
    sources make a simulated round reproducible. ``progress(stage, done, total)`` is called as the
    clients answer each stage (named by :func:`stage_label`). ``executor(states, drops,
    random_source)`` makes the host the clients run in (default: this process;
    :class:`fedprivacy.adapters.ray_executor.RayExecutor` runs them on a Ray cluster; the server stays
    here and the round is the same). ``trust`` is the deployment's
    trust store, for a server whose settings ask for malicious mode (the clients carry their
    identities in their states). ``clock`` times the parties (wall time by default; a benchmark on a
    shared machine may pass ``time.process_time``; clients on another host use their own wall time).
    ``union_estimate`` (the previous round's ``union_size``: a multi-round driver passes it on, as
    ``fedprivacy simulate`` does) sizes the first PSU table at ``PSU_HEADROOM`` times it instead of the
    ceiling n x max_set_size; ``psu_first_bound`` gives that bound directly (see
    :class:`~fedprivacy.submodel.server.SubmodelRoundServer`); a union that outgrows it reruns the PSU.
    ``server_workers``: local worker processes for the server's unmasking
    (:class:`~fedprivacy.secagg.unmasking.UnmaskingWorkers`; default: the server's thread). They
    receive rebuilt secrets, so they must be this machine's processes, whatever ``executor`` is.
    Raises :class:`~fedprivacy.errors.RoundAborted` when the round cannot complete (the model is
    then untouched)."""
    drops = drops or RoundDrops()
    party = SubmodelRoundServer(server, settings, sorted(states), round_index, trust=trust,
                                union_estimate=union_estimate, psu_first_bound=psu_first_bound,
                                workers=server_workers)
    host = InProcessClients(states, drops, random_source, clock=clock) if executor is None else executor(states, drops, random_source)
    seen: Callable[[int, int, bytes], None] | None = None
    if observer is not None:
        def seen(sender: int, recipient: int, data: bytes) -> None:
            observer(_session_of(decode_submodel_message(data)), sender, recipient, data)
    batch = max(1, int(getattr(host, "batch", 1)))
    link = Loopback(party, decode_submodel_message, host, states, clock=clock, observer=seen, window=batch,
                    step=lambda: stage_label(party))
    counters, timing = link.counters, {"psu": 0.0, "ldp": 0.0, "aggregation": 0.0}

    def seconds() -> float:  # the server's and the clients' seconds so far
        return counters.server_seconds + counters.client_seconds_total

    outbound = link.call(party.start, work="start")
    timing["psu"] += seconds()
    while party.stage not in (RoundServerStage.COMPLETED, RoundServerStage.ABORTED):
        label = stage_label(party)
        before, where = seconds(), _bucket(party.stage)
        link.exchange(outbound, None if progress is None else partial(progress, label))
        timing[where] += seconds() - before
        # Planning and the row downloads belong to the aggregation; RoundAborted propagates (model untouched).
        before = seconds()
        where = "aggregation" if party.stage is RoundServerStage.COLLECTING_REPORTS else _bucket(party.stage)
        outbound = link.close()
        timing[where] += seconds() - before

    assert party.result is not None
    return _outcome(party.result, states, host.finish(), link.counters, timing)


def _outcome(result: RoundResult, states: Mapping[int, DeviceState], summaries: dict[int, ClientSummary],
             counters: LinkCounters, timing: dict[str, float]) -> SubmodelRoundOutcome:
    """The round's outcome; the caller's states get the ledgers and memos a remote host worked on."""
    for p, summary in summaries.items():
        if summary.state is not states[p]:
            states[p].ledger, states[p].memo = summary.state.ledger, summary.state.memo
    survivors = sorted(result.contributors)
    spent = [replay(s.ledger).spent() for s in states.values()]
    return SubmodelRoundOutcome(
        union_size=int(result.union.shape[0]),
        participants=len(survivors),
        refused=sorted(p for p, c in summaries.items() if c.sat_out_reason == "budget"),
        thin_rows=result.thin_rows,
        rows_updated=result.rows_updated,
        chosen_mean=float(np.mean([len(v) for v in result.chosen.values()])),
        upload_bytes_median=float(statistics.median(counters.upload[p] for p in survivors)) if survivors else 0.0,
        download_bytes_median=float(statistics.median(counters.download[p] for p in survivors)) if survivors else 0.0,
        psu_seconds=timing["psu"],
        ldp_seconds=timing["ldp"],
        aggregation_seconds=timing["aggregation"],
        server_seconds=counters.server_seconds,
        client_seconds_median=float(statistics.median(counters.client_seconds[p] for p in survivors)) if survivors else 0.0,
        epsilon_spent_max=max(spent) if spent else 0.0,
        contributors=result.contributors,
        oversized=sorted(p for p, c in summaries.items() if c.sat_out_reason == "oversized"),
        training_seconds=sum(c.training_seconds for c in summaries.values()),
        chosen=result.chosen,
        planned_rows=result.planned_rows,
        client_errors=counters.errors,
        result=result,
        exchanges=counters.exchanges,
        psu_first_bound=result.psu_bounds[0] if result.psu_bounds else 0,
        psu_attempts=result.psu_attempts,
        server_steps={step: dict(works) for step, works in counters.server_steps.items()},
    )
