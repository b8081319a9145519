"""An in-memory driver: N clients and the server in one process, every message through its bytes.

It plays the transport: it encodes each message, decodes it on the other side (so every run
exercises the wire format), delivers in a fixed order, and follows a scripted dropout schedule --
which parties vanish before which stage, and which of them send their message late anyway (after
the server closed that stage; the server must ignore it). It does no I/O and keeps no clock except
the optional per-party timings the benchmark reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import partial

import numpy as np

from ..errors import FedPrivacyError, RoundAborted
from ..hazmat.prg import RandomSource, system_random_bytes
from .client import SecAggClient
from .identity import Identity, TrustStore
from .messages import MaskedInput, Message, decode_message
from .params import SecAggConfig
from .policy import SecAggPolicy
from .rows import RowPlan
from .server import IgnoredMessage, SecAggServer

__all__ = ["DropStage", "DropoutSchedule", "RoundReport", "run_secagg_round"]


class DropStage(Enum):
    """The stage whose message a party never sends (it vanishes just before it)."""

    ADVERTISE = "advertise"  # never advertises keys: not in U1
    SHARE = "share"  # advertised keys, never shares them: in U1 \\ U2
    INPUT = "input"  # shared keys, never sends its masked input: in U2 \\ U3
    UNMASK = "unmask"  # sent its masked input, never answers the unmasking request: in U3 \\ U5


_ORDER = [DropStage.ADVERTISE, DropStage.SHARE, DropStage.INPUT, DropStage.UNMASK]


@dataclass(frozen=True)
class DropoutSchedule:
    drops: Mapping[int, DropStage] = field(default_factory=dict)
    late: frozenset[int] = frozenset()  # dropped parties whose skipped message arrives after the close
    # Malicious mode: parties dropped at UNMASK that also never sign U3 (in U3 \ U4); others sign first.
    unsigned: frozenset[int] = frozenset()

    def active(self, party: int, stage: DropStage) -> bool:
        dropped_at = self.drops.get(party)
        return dropped_at is None or _ORDER.index(dropped_at) > _ORDER.index(stage)


@dataclass
class RoundReport:
    result: np.ndarray | None
    aborted: RoundAborted | None
    advertised_ids: frozenset[int]
    shared_ids: frozenset[int]
    input_ids: frozenset[int]
    unmask_ids: frozenset[int]
    signed_ids: frozenset[int]
    client_errors: dict[int, FedPrivacyError]
    ignored: list[IgnoredMessage]
    client_seconds: dict[int, float]
    client_masking_seconds: dict[int, float]
    server_seconds: float
    upload_bytes: dict[int, int]
    download_bytes: dict[int, int]


def run_secagg_round(
    config: SecAggConfig,
    inputs: Mapping[int, np.ndarray] | Callable[[int], np.ndarray],
    schedule: DropoutSchedule | None = None,
    *,
    random_source: Callable[[int], RandomSource] | None = None,
    tamper: Callable[[int, bytes], bytes] | None = None,
    observer: Callable[[int, int, bytes], None] | None = None,
    row_plan: RowPlan | None = None,
    identities: Mapping[int, Identity] | None = None,
    trust: TrustStore | None = None,
    server_trust: TrustStore | None | bool = True,
    client_trust: Mapping[int, TrustStore] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    policy: SecAggPolicy | None = None,
) -> RoundReport:
    """Run one round. ``inputs`` maps a party to its vector (or is a function, called when the party
    masks, so a large simulation never holds every input at once). ``random_source(party_id)`` gives each client its randomness (default: the OS
    CSPRNG); ``tamper(recipient, data)`` may rewrite server-to-client bytes (for negative tests);
    ``observer(sender, recipient, data)`` sees every delivered message (the server is party 0);
    ``row_plan`` switches to per-row aggregation (each party's input: its chosen rows' blocks);
    ``policy`` is every client's :class:`~fedprivacy.secagg.policy.SecAggPolicy` (a
    :class:`~fedprivacy.policy.ClientPolicy` is one; default: the safe default).
    A malicious-mode config needs ``identities`` (party -> its :class:`Identity`) and ``trust``; the
    server checks signatures with ``trust`` unless ``server_trust`` is ``False`` or another store;
    ``client_trust`` gives some parties a store of their own (negative tests). ``clock`` times the
    parties (wall time by default; a benchmark on a shared machine may pass ``time.process_time``)."""
    schedule = schedule or DropoutSchedule()
    if server_trust is True:
        server_trust = trust if config.malicious else None
    server = SecAggServer(config, row_plan, server_trust or None)
    clients = {
        party: SecAggClient(
            config,
            party,
            random_bytes=system_random_bytes if random_source is None else random_source(party),
            row_plan=None if row_plan is None else row_plan.for_client(party),
            identity=None if identities is None else identities[party],
            trust=None if identities is None else (client_trust or {}).get(party, trust),
            policy=policy,
        )
        for party in config.party_ids
    }
    client_seconds = dict.fromkeys(config.party_ids, 0.0)
    masking_seconds: dict[int, float] = {}
    upload = dict.fromkeys(config.party_ids, 0)
    download = dict.fromkeys(config.party_ids, 0)
    errors: dict[int, FedPrivacyError] = {}
    server_seconds = 0.0
    pending_late: list[tuple[int, bytes]] = []

    outbox: list[tuple[int, bytes]] = []  # encoded client messages not yet given to the server

    def to_server(party: int, messages: list[Message]) -> None:
        for message in messages:
            started = clock()
            data = message.to_bytes()
            client_seconds[party] += clock() - started
            upload[party] += len(data)
            outbox.append((party, data))
            if isinstance(message, MaskedInput):  # large: delivered at once, never all held together
                deliver()

    def deliver() -> None:
        """Hand the queued messages to the server, in order. Small messages wait for the end of the
        stage, as a server on another machine would see them: the server's time is then not mixed
        with the clients' work (their signature checks would otherwise cool its caches)."""
        nonlocal server_seconds
        for party, data in outbox:
            if observer is not None:
                observer(party, 0, data)
            started = clock()
            server.receive(decode_message(data))
            server_seconds += clock() - started
        outbox.clear()

    def client_step(party: int, step: Callable[[], list[Message]], masking: bool = False) -> list[Message]:
        started = clock()
        try:
            return step()
        except FedPrivacyError as exc:  # the client aborted; from now on it is simply gone
            errors[party] = exc
            return []
        finally:
            elapsed = clock() - started
            client_seconds[party] += elapsed
            if masking:
                masking_seconds[party] = elapsed

    def close(stage: DropStage) -> list[tuple[int, Message]] | None:
        nonlocal server_seconds
        deliver()
        started = clock()
        try:
            outbound = server.close_stage()
        except RoundAborted:
            return None
        finally:
            server_seconds += clock() - started
        for party, data in pending_late:  # late arrivals: must be ignored, never merged
            server.receive(decode_message(data))
        pending_late.clear()
        delivered = []
        for item in outbound:
            started = clock()
            data = item.message.to_bytes()
            server_seconds += clock() - started
            if tamper is not None:
                data = tamper(item.recipient, data)
            download[item.recipient] += len(data)
            if observer is not None:
                observer(0, item.recipient, data)
            delivered.append((item.recipient, data))
        return [(party, decode_message(data)) for party, data in delivered]

    def participate(party: int, stage: DropStage, messages: list[Message]) -> None:
        if schedule.active(party, stage):
            to_server(party, messages)
        elif party in schedule.late and schedule.drops.get(party) is stage:
            pending_late.extend((party, m.to_bytes()) for m in messages)

    # Round 0: advertise keys.
    for party, client in clients.items():
        participate(party, DropStage.ADVERTISE, client_step(party, client.start))
    broadcasts = close(DropStage.ADVERTISE)
    # Round 1: share keys.
    for party, message in broadcasts or []:
        if party not in errors and schedule.active(party, DropStage.ADVERTISE):
            participate(party, DropStage.SHARE, client_step(party, partial(clients[party].receive, message)))
    routed = close(DropStage.SHARE) if broadcasts is not None else None
    # Round 2: masked input.
    for party, message in routed or []:
        if party not in errors and schedule.active(party, DropStage.SHARE):
            client = clients[party]
            client_step(party, partial(client.receive, message))
            if party not in errors:
                vector = inputs(party) if callable(inputs) else inputs[party]
                out = client_step(party, partial(client.submit_input, vector), masking=True)
                participate(party, DropStage.INPUT, out)
    requests = close(DropStage.INPUT) if routed is not None else None
    if config.malicious and requests is not None:  # the consistency check
        for party, message in requests:
            if party not in errors and schedule.active(party, DropStage.INPUT) and party not in schedule.unsigned:
                to_server(party, client_step(party, partial(clients[party].receive, message)))
        requests = close(DropStage.UNMASK)
    # Round 3: unmasking.
    for party, message in requests or []:
        if party not in errors and schedule.active(party, DropStage.INPUT):
            participate(party, DropStage.UNMASK, client_step(party, partial(clients[party].receive, message)))
    if requests is not None:
        close(DropStage.UNMASK)
    return RoundReport(
        result=server.result if server.abort_error is None and requests is not None else None,
        aborted=server.abort_error,
        advertised_ids=server.advertised_ids,
        shared_ids=server.shared_ids,
        input_ids=server.input_ids,
        unmask_ids=server.unmask_ids,
        signed_ids=server.signed_ids,
        client_errors=errors,
        ignored=list(server.ignored),
        client_seconds=client_seconds,
        client_masking_seconds=masking_seconds,
        server_seconds=server_seconds,
        upload_bytes=upload,
        download_bytes=download,
    )
