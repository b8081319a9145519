"""The in-process engine (the embedded default): one secure submodel round with N clients in one process.

It plays the network for the sans-I/O parties of :mod:`fedprivacy.submodel` -- one
:class:`~fedprivacy.submodel.server.SubmodelRoundServer` and a
:class:`~fedprivacy.submodel.client.SubmodelRoundClient` per client: every message is encoded to
bytes and decoded on the other side (so every run exercises the wire format), delivered in a fixed
order, and the server closes each stage once every delivered message was answered. A scripted
:class:`RoundDrops` makes clients vanish just before a given message; a client that aborts (a
protocol violation it detected, an invalid training result) is gone from then on too. This is what
``fedprivacy simulate`` and ``fedprivacy bench round`` run; the Flower adapter drives the same
parties over Flower's Message API instead.

The engine does no I/O itself; a client's ledger and memo go to its ``ClientState.store`` (files for
``ClientStore``) inside the client's step, before its randomized set is handed over.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..accounting import replay
from ..errors import FedPrivacyError
from ..hazmat.prg import RandomSource, system_random_bytes
from ..secagg import DropStage, TrustStore
from ..secagg.messages import AdvertiseKeys, MaskedInput, ShareKeys, UnmaskResponse
from .client import ClientState, SubmodelRoundClient
from .interfaces import SubmodelServer
from .messages import (
    Phase,
    PhaseMessage,
    RandomizedSetReport,
    SitOut,
    SubmodelMessage,
    UnionBroadcast,
    decode_submodel_message,
)
from .server import Outbound, RoundResult, SubmodelRoundServer
from .settings import RoundSettings
from .stages import RoundServerStage

__all__ = ["ClientSummary", "Delivery", "InProcessClients", "RoundDrops", "RoundOutcome", "handle", "run_round"]

_DROP_STAGE_OF = {AdvertiseKeys: DropStage.ADVERTISE, ShareKeys: DropStage.SHARE, MaskedInput: DropStage.INPUT,
                  UnmaskResponse: DropStage.UNMASK}


@dataclass(frozen=True)
class RoundDrops:
    """Scripted dropouts: a client vanishes just before sending the named message of the PSU's secure
    sum (``psu``), its randomized set (``after_psu``), or the named message of the rows' sum (``upload``)."""

    psu: Mapping[int, DropStage] = field(default_factory=dict)
    after_psu: frozenset[int] = frozenset()
    upload: Mapping[int, DropStage] = field(default_factory=dict)

    def vanishes_before(self, party: int, message: SubmodelMessage) -> bool:
        if isinstance(message, PhaseMessage):
            stage = _DROP_STAGE_OF.get(type(message.payload))
            schedule = self.psu if message.phase is Phase.PSU else self.upload
            return stage is not None and schedule.get(party) is stage
        return isinstance(message, (RandomizedSetReport, SitOut)) and party in self.after_psu


@dataclass
class RoundOutcome:
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


def _session_of(message: SubmodelMessage) -> str:
    if isinstance(message, PhaseMessage):
        return "psu" if message.phase is Phase.PSU else "rows"
    return "report" if isinstance(message, RandomizedSetReport) else "round"


@dataclass
class Delivery:
    """What one client did with one server message: the bytes it sent back (in order), whether it is
    gone from now on (it vanished, as scripted, or aborted: ``error``), and its protocol seconds
    (local training excluded)."""

    replies: list[bytes]
    gone: bool
    seconds: float
    error: FedPrivacyError | None = None
    delivered: bool = True  # False: the client was gone already and never got the message


@dataclass
class ClientSummary:
    """A client's end of round, for the outcome (its state is written back into the caller's)."""

    state: ClientState
    sat_out_reason: str | None
    training_seconds: float


def handle(client: SubmodelRoundClient, drops: RoundDrops, data: bytes, gone: set[int]) -> Delivery:
    """Deliver one message's bytes to a client; its replies up to a scripted vanishing, as bytes.
    A client in ``gone`` gets nothing; one that vanishes or aborts is added to it."""
    if client.party_id in gone:
        return Delivery([], True, 0.0, delivered=False)
    clock = client.clock
    started = clock()
    training_before = client.training_seconds
    try:
        replies = client.receive(decode_submodel_message(data))
    except FedPrivacyError as exc:  # the client aborted; from now on it is simply gone
        gone.add(client.party_id)
        return Delivery([], True, clock() - started - (client.training_seconds - training_before), exc)
    out, vanished = [], False
    for reply in replies:
        if drops.vanishes_before(client.party_id, reply):
            vanished = True
            gone.add(client.party_id)
            break
        out.append(reply.to_bytes())
    return Delivery(out, vanished, clock() - started - (client.training_seconds - training_before))


class InProcessClients:
    """The clients of a round in this process (the engine's default host)."""

    def __init__(self, states: Mapping[int, ClientState], drops: RoundDrops,
                 random_source: Callable[[int], RandomSource] | None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self._drops = drops
        self._gone: set[int] = set()
        self._clients = {p: SubmodelRoundClient(s, p, random_bytes=system_random_bytes if random_source is None
                                                else random_source(p)) for p, s in states.items()}
        for client in self._clients.values():
            client.clock = clock  # times the protocol and the training (both excluded alike)

    batch = 1  # messages handed over at a time: one (only one client's plan and rows exist at once)

    def deliver(self, items: list[tuple[int, bytes]]) -> list[Delivery]:
        return [handle(self._clients[recipient], self._drops, data, self._gone) for recipient, data in items]

    def finish(self) -> dict[int, ClientSummary]:
        return {p: ClientSummary(c.state, c.sat_out_reason, c.training_seconds) for p, c in self._clients.items()}


class ClientHost(Protocol):
    """Where a round's clients run: hands them messages in batches and reports how they ended."""

    batch: int

    def deliver(self, items: list[tuple[int, bytes]]) -> list[Delivery]: ...

    def finish(self) -> dict[int, ClientSummary]: ...


ClientHostFactory = Callable[[Mapping[int, ClientState], RoundDrops, "Callable[[int], RandomSource] | None"], ClientHost]


def run_round(
    states: Mapping[int, ClientState],
    server: SubmodelServer,
    settings: RoundSettings,
    round_index: int,
    drops: RoundDrops | None = None,
    observer: Callable[[str, int, int, bytes], None] | None = None,
    random_source: Callable[[int], RandomSource] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    executor: ClientHostFactory | None = None,
    trust: TrustStore | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> RoundOutcome:
    """Run one round: updates ``server``'s model and the clients' ledgers and memos in place.

    ``observer(session, sender, recipient, data)`` sees the bytes of every message (session "round",
    "psu", "report" or "rows"; the server is party 0) -- for transcripts and proofs.
    ``random_source(party)`` gives each client its randomness (default: the OS CSPRNG); seeded
    sources make a simulated round reproducible. ``progress(stage, done, total)`` is called as the
    clients answer each stage. ``executor(states, drops, random_source)`` makes the host the clients
    run in (default: this process; :class:`fedprivacy.adapters.ray_executor.RayExecutor` runs them on
    a Ray cluster; the server stays here and the round is the same). ``trust`` is the deployment's
    trust store, for a server whose settings ask for malicious mode (the clients carry their
    identities in their states). ``clock`` times the parties (wall time by default; a benchmark on a
    shared machine may pass ``time.process_time``; clients on another host use their own wall time).
    Raises :class:`~fedprivacy.errors.RoundAborted` when the round cannot complete (the model is
    then untouched)."""
    drops = drops or RoundDrops()
    party = SubmodelRoundServer(server, settings, sorted(states), round_index, trust=trust)
    host: ClientHost
    if executor is None:
        host = InProcessClients(states, drops, random_source, clock=clock)
    else:
        host = executor(states, drops, random_source)
    gone: set[int] = set()
    errors: dict[int, FedPrivacyError] = {}
    sent = dict.fromkeys(states, 0)
    received = dict.fromkeys(states, 0)
    client_seconds = dict.fromkeys(states, 0.0)
    timing = {"server": 0.0, "psu": 0.0, "ldp": 0.0, "aggregation": 0.0}
    encoded: dict[int, bytes] = {}  # the union broadcast is encoded once

    def bucket() -> str:
        return {RoundServerStage.COLLECTING_REPORTS: "ldp"}.get(party.stage, "psu" if party.stage in (
            RoundServerStage.CREATED, RoundServerStage.PSU) else "aggregation")

    def server_call(function: Callable[..., object], *args: object) -> object:
        where = bucket()
        if function == party.close_stage and party.stage is RoundServerStage.COLLECTING_REPORTS:
            where = "aggregation"  # planning and the row downloads
        started = clock()
        try:
            return function(*args)
        finally:
            elapsed = clock() - started
            timing["server"] += elapsed
            timing[where] += elapsed

    def deliver(chunk: Sequence[Outbound]) -> None:
        where = bucket()
        items = []
        for item in chunk:
            recipient = item.recipient
            if recipient in gone:
                continue
            started = clock()
            data = encoded.get(id(item.message))
            if data is None:
                data = item.message.to_bytes()
                if isinstance(item.message, UnionBroadcast):  # the same object for every recipient
                    encoded[id(item.message)] = data
            timing["server"] += clock() - started
            items.append((recipient, data, _session_of(item.message)))
        deliveries = host.deliver([(recipient, data) for recipient, data, _ in items])
        for (recipient, data, session), delivery in zip(items, deliveries):
            if not delivery.delivered:
                gone.add(recipient)
                continue
            received[recipient] += len(data)
            if observer is not None:
                observer(session, 0, recipient, data)
            if delivery.error is not None:
                errors[recipient] = delivery.error
            if delivery.gone:
                gone.add(recipient)
            for data in delivery.replies:
                sent[recipient] += len(data)
                if observer is not None:
                    observer(_session_of(decode_submodel_message(data)), recipient, 0, data)
                server_call(lambda d=data: party.receive(decode_submodel_message(d)))
            client_seconds[recipient] += delivery.seconds
            timing[where] += delivery.seconds

    outbound = server_call(party.start)
    exchanges = 0
    while party.stage not in (RoundServerStage.COMPLETED, RoundServerStage.ABORTED):
        label = party.stage.value if party.phase_stage is None else f"{party.stage.value}:{party.phase_stage.value}"
        assert isinstance(outbound, Sequence)
        exchanges += 1 if len(outbound) else 0
        batch = max(1, int(getattr(host, "batch", 1)))
        for start in range(0, len(outbound), batch):
            built = clock()
            chunk = outbound[start:start + batch]  # a lazy stage (the row downloads) builds its messages here
            elapsed = clock() - built
            timing["server"] += elapsed
            timing[bucket()] += elapsed
            deliver(chunk)
            if progress is not None:
                progress(label, start + len(chunk), len(outbound))
        encoded.clear()
        outbound = server_call(party.close_stage)  # RoundAborted propagates: the model is untouched

    result = party.result
    assert result is not None
    summaries = host.finish()
    for p, summary in summaries.items():  # a remote host worked on copies: the caller's states get its ledger and memo
        if summary.state is not states[p]:
            states[p].ledger, states[p].memo = summary.state.ledger, summary.state.memo
    survivors = sorted(result.contributors)
    spent = [replay(s.ledger).spent() for s in states.values()]
    return RoundOutcome(
        union_size=int(result.union.shape[0]),
        participants=len(survivors),
        refused=sorted(p for p, c in summaries.items() if c.sat_out_reason == "budget"),
        thin_rows=result.thin_rows,
        rows_updated=result.rows_updated,
        chosen_mean=float(np.mean([len(v) for v in result.chosen.values()])),
        upload_bytes_median=float(statistics.median(sent[p] for p in survivors)) if survivors else 0.0,
        download_bytes_median=float(statistics.median(received[p] for p in survivors)) if survivors else 0.0,
        psu_seconds=timing["psu"],
        ldp_seconds=timing["ldp"],
        aggregation_seconds=timing["aggregation"],
        server_seconds=timing["server"],
        client_seconds_median=float(statistics.median(client_seconds[p] for p in survivors)) if survivors else 0.0,
        epsilon_spent_max=max(spent) if spent else 0.0,
        contributors=result.contributors,
        oversized=sorted(p for p, c in summaries.items() if c.sat_out_reason == "oversized"),
        training_seconds=sum(c.training_seconds for c in summaries.values()),
        chosen=result.chosen,
        planned_rows=result.planned_rows,
        client_errors=errors,
        result=result,
        exchanges=exchanges,
    )
