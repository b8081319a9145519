"""An in-memory driver: N clients and the server in one process, over the loopback transport.

:mod:`fedprivacy.loopback` plays the network: every message travels as its bytes (so every run
exercises the wire format) in a fixed order, and a scripted dropout schedule says which parties
vanish before which step (:class:`~fedprivacy.secagg.stages.SecAggStep`), and which of them send
their message late anyway (after the server closed that step; the server must ignore it). It does no
I/O and keeps no clock except the optional per-party timings the benchmark reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from ..errors import FedPrivacyError, RoundAborted
from ..hazmat.prg import RandomSource, system_random_bytes
from ..loopback import InProcessHost, Loopback
from .client import SecAggClient
from .identity import Identity, TrustStore
from .messages import (
    AdvertiseKeys,
    ConsistencyResponse,
    MaskedInput,
    Message,
    RoutedShares,
    ShareKeys,
    UnmaskResponse,
    decode_message,
)
from .params import SecAggConfig
from .policy import SecAggPolicy
from .rows import RowPlan
from .server import IgnoredMessage, SecAggServer
from .stages import SecAggStep, ServerStage
from .unmasking import UnmaskingWorkers

__all__ = ["DropoutSchedule", "RoundReport", "SecAggStep", "run_secagg_round", "step_of"]


_STEP_OF: dict[type, SecAggStep] = {
    AdvertiseKeys: SecAggStep.ADVERTISE, ShareKeys: SecAggStep.SHARE, MaskedInput: SecAggStep.INPUT,
    ConsistencyResponse: SecAggStep.UNMASK, UnmaskResponse: SecAggStep.UNMASK,
}
_HOLD_BELOW = 1 << 16  # shorter replies wait for the end of a step; a masked input goes to the server at once


def step_of(message: object) -> SecAggStep | None:
    """The step a client's message belongs to (``None``: not a client's secure-aggregation message)."""
    return _STEP_OF.get(type(message))


@dataclass(frozen=True)
class DropoutSchedule:
    drops: Mapping[int, SecAggStep] = field(default_factory=dict)
    late: frozenset[int] = frozenset()  # dropped parties whose skipped message arrives after the close
    # Malicious mode: parties dropped at UNMASK that also never sign U3 (in U3 \ U4); others sign first.
    unsigned: frozenset[int] = frozenset()

    def active(self, party: int, stage: SecAggStep) -> bool:
        dropped_at = self.drops.get(party)
        return dropped_at is None or dropped_at.order > stage.order

    def vanishes_before(self, party: int, message: object) -> bool:
        """Whether ``party`` vanishes just before sending ``message`` (its scripted step's message)."""
        step = step_of(message)
        if step is None or self.drops.get(party) is not step:
            return False
        return not isinstance(message, ConsistencyResponse) or party in self.unsigned

    def arrives_late(self, party: int, message: object) -> bool:
        """Whether the message ``party`` vanished before still reaches the server, after the close."""
        return party in self.late and not isinstance(message, ConsistencyResponse)


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
    server_workers: UnmaskingWorkers | None = None,
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
    parties (wall time by default; a benchmark on a shared machine may pass ``time.process_time``).
    ``server_workers``: local worker processes for the server's unmasking (:mod:`.unmasking`)."""
    schedule = schedule or DropoutSchedule()
    if server_trust is True:
        server_trust = trust if config.malicious else None
    server = SecAggServer(config, row_plan, server_trust or None, workers=server_workers)
    clients = _Clients(config, inputs, clock, {
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
    })
    host = InProcessHost({p: partial(clients.handle, p) for p in config.party_ids}, decode_message, clock=clock,
                         vanishes=schedule.vanishes_before, late=schedule.arrives_late, excluded=clients.outside.__getitem__)
    link = Loopback(server, decode_message, host, config.party_ids, clock=clock, observer=observer, tamper=tamper,
                    hold_below=_HOLD_BELOW)
    link.start(config.party_ids)
    try:
        while server.stage is not ServerStage.COMPLETED:
            link.exchange(link.close())
    except RoundAborted:
        pass
    counters = link.counters
    return RoundReport(
        result=server.result if server.stage is ServerStage.COMPLETED else None,
        aborted=server.abort_error,
        advertised_ids=server.advertised_ids,
        shared_ids=server.shared_ids,
        input_ids=server.input_ids,
        unmask_ids=server.unmask_ids,
        signed_ids=server.signed_ids,
        client_errors=counters.errors,
        ignored=list(server.ignored),
        client_seconds=counters.client_seconds,
        client_masking_seconds=clients.masking,
        server_seconds=counters.server_seconds,
        upload_bytes=counters.upload,
        download_bytes=counters.download,
    )


class _Clients:
    """The round's clients, as the loopback's handlers: a client starts, answers each message, and
    masks its input as soon as its shares are in (the input made then, its making not timed as the
    client's: ``outside``; the masking itself timed apart too: ``masking``)."""

    def __init__(self, config: SecAggConfig, inputs: Mapping[int, np.ndarray] | Callable[[int], np.ndarray],
                 clock: Callable[[], float], clients: dict[int, SecAggClient]) -> None:
        self.clients, self.inputs, self.clock = clients, inputs, clock
        self.masking: dict[int, float] = {}
        self.outside = dict.fromkeys(config.party_ids, 0.0)

    def handle(self, party: int, message: Message | None) -> list[Message]:
        client, clock = self.clients[party], self.clock
        if message is None:
            return client.start()
        replies = client.receive(message)
        if isinstance(message, RoutedShares):  # the shares are in: the input is masked now
            started = clock()
            vector = self.inputs(party) if callable(self.inputs) else self.inputs[party]
            self.outside[party] += clock() - started
            started = clock()
            try:
                replies = replies + client.submit_input(vector)
            finally:
                self.masking[party] = clock() - started
        return replies
