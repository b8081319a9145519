"""A malicious server for the in-process rounds: it runs the honest server's logic over the loopback
transport (:mod:`fedprivacy.loopback`, every message as its bytes), but every message it sends goes
through ``tamper`` first, which may rewrite it, drop it (return ``[]``), split it (return
several, e.g. different versions to different parties) or replay it (return it twice, or return one
it kept from earlier). Every message the clients send is recorded, so an attack can compute what the
server learns from them.

Two rounds are covered: a secure sum alone (:class:`SecureSumAttack`, real
:class:`~fedprivacy.secagg.SecAggClient` objects) and a full submodel round
(:class:`SubmodelRoundAttack`, real :class:`~fedprivacy.submodel.client.SubmodelRoundClient` objects).
The attacker's computations (:func:`strip_victim`, :func:`strip_row_self_mask`) use only what a server
holds: the clients' messages and the public config.

Hook for the active-adversary mode: :data:`ADVERSARY_MODES` lists the modes the equivocation tests run
under, each with the threshold the server uses and whether the real client must defeat the attack;
a mode added to ``Adversary`` adds an entry (and its client factory, if its clients need more than a
policy, e.g. identity keys) without changing the tests.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fedprivacy.errors import FedPrivacyError, RoundAborted
from fedprivacy.hazmat import shamir
from fedprivacy.hazmat.field import Modulus
from fedprivacy.hazmat.kex import KeyAgreement
from fedprivacy.hazmat.prg import MaskExpander
from fedprivacy.loopback import InProcessHost, Loopback
from fedprivacy.policy import ClientPolicy
from fedprivacy.secagg import Adversary, SecAggClient, SecAggConfig, SecAggOutbound, SecAggServer, ServerStage
from fedprivacy.secagg.masking import limbs_to_secret, pair_mask_key, self_mask_key
from fedprivacy.secagg.messages import (
    SECRET_LIMBS,
    AdvertiseKeys,
    MaskedInput,
    Message,
    UnmaskRequest,
    UnmaskResponse,
    decode_message,
)
from fedprivacy.secagg.rows import row_keystream
from fedprivacy.submodel.client import DeviceState, SubmodelRoundClient
from fedprivacy.submodel.messages import Phase, PhaseMessage, SubmodelMessage, decode_submodel_message
from fedprivacy.submodel.server import SubmodelRoundServer
from fedprivacy.submodel.settings import RoundSettings
from fedprivacy.submodel.stages import RoundServerStage

Tamper = Callable[[int, object], list]


def honest(_recipient: int, message: object) -> list:
    return [message]


# -- the modes the equivocation tests run under (the malicious mode adds its entry) -------------------


@dataclass(frozen=True)
class AdversaryMode:
    adversary: Adversary
    real_client_defeats_equivocation: bool  # with the threshold of this mode, the attack must fail
    client_policy: ClientPolicy = field(default_factory=ClientPolicy)
    # Builds the real clients of a round (party -> client); None: SecAggClient(config, p, policy=...).
    make_clients: Callable[[SecAggConfig, ClientPolicy], dict[int, SecAggClient]] | None = None


def _malicious_clients(config: SecAggConfig, policy: ClientPolicy) -> dict[int, SecAggClient]:
    """Malicious mode: every client with its identity key and the deployment's trust store."""
    from fedprivacy.hazmat.prg import DeterministicRandomness
    from fedprivacy.secagg import make_identities

    identities, trust = make_identities(config.party_ids, DeterministicRandomness("attack-suite/identities"))
    return {
        p: SecAggClient(config, p, random_bytes=DeterministicRandomness(f"eq{p}"), policy=policy,
                        identity=identities[p], trust=trust)
        for p in config.party_ids
    }


ADVERSARY_MODES: dict[str, AdversaryMode] = {
    "curious": AdversaryMode(Adversary.CURIOUS, real_client_defeats_equivocation=False),
    "semi-malicious": AdversaryMode(Adversary.SEMI_MALICIOUS, real_client_defeats_equivocation=True),
    "malicious": AdversaryMode(Adversary.MALICIOUS, real_client_defeats_equivocation=True,
                               client_policy=ClientPolicy(adversary=Adversary.MALICIOUS), make_clients=_malicious_clients),
}


# -- a secure sum alone ------------------------------------------------------------------------------


@dataclass
class SecureSumAttack:
    """One secure sum between ``clients`` and a server whose outgoing messages pass through ``tamper``."""

    config: SecAggConfig
    clients: dict[int, SecAggClient]
    tamper: Tamper = honest
    sent: dict[int, list[Message]] = field(default_factory=lambda: defaultdict(list))  # client -> what it sent
    errors: dict[int, FedPrivacyError] = field(default_factory=dict)
    aborted: RoundAborted | None = None

    def run(self, inputs: Mapping[int, np.ndarray]) -> np.ndarray | None:
        server = SecAggServer(self.config)

        def handler(party: int) -> Callable[[Message | None], list]:
            def on(message: Message | None) -> list:
                client = self.clients[party]
                if message is None:  # it starts, and its input waits for the shares
                    out = client.start() + client.submit_input(inputs[party])
                else:
                    out = client.receive(message)
                self.sent[party].extend(out)
                return out
            return on

        link = _link(server, decode_message, {p: handler(p) for p in self.clients})
        link.start(self.clients)
        try:
            while server.stage is not ServerStage.COMPLETED:
                outbound = link.close()
                if server.stage is not ServerStage.COMPLETED:  # equivocations go where they name
                    link.exchange(_Tampered(outbound, self.tamper, lambda item, m: m.recipient, set(self.clients)))
        except RoundAborted as exc:
            self.aborted = exc
            return None
        finally:
            self.errors.update(link.counters.errors)
        return server.result


class _Tampered(Sequence):
    """The server's outbound as the attacker rewrites it, item by item as the transport takes it (each
    item may become none, one or several messages, addressed by ``route(item, message)``)."""

    def __init__(self, outbound: Sequence, tamper: Tamper, route: Callable[[object, object], int], known: set[int]):
        self._outbound, self._tamper, self._route, self._known = outbound, tamper, route, known

    def __len__(self) -> int:
        return len(self._outbound)

    def __getitem__(self, index):
        items = self._outbound[index] if isinstance(index, slice) else [self._outbound[index]]
        rewritten = [(self._route(item, m), m) for item in items for m in self._tamper(item.recipient, item.message)]
        return [SecAggOutbound(recipient, m) for recipient, m in rewritten if recipient in self._known]


def _link(server: object, decode: Callable[[bytes], object], handlers: Mapping[int, Callable]) -> Loopback:
    """The loopback transport between ``server`` and in-process ``handlers``, one message at a time
    (the attacker rewrites each just before it goes out)."""
    host = InProcessHost(handlers, decode)
    return Loopback(server, decode, host, handlers, window=1)


def equivocate(victim: int, told_alive: set[int]) -> Tamper:
    """Unmasking requests that tell the holders in ``told_alive`` the victim is alive (its seed share)
    and every other holder that it dropped (its mask-key share); everything else is relayed."""

    def tamper(recipient: int, message: object) -> list:
        if not isinstance(message, UnmaskRequest):
            return [message]
        alive, dropped = set(message.alive_ids), set(message.dropped_ids)
        if victim not in alive | dropped:
            return [message]
        alive.discard(victim)
        dropped.discard(victim)
        (alive if recipient in told_alive else dropped).add(victim)
        return [UnmaskRequest(recipient, tuple(sorted(alive)), tuple(sorted(dropped)), message.signatures)]

    return tamper


def victim_shares(sent: Mapping[int, list], victim: int) -> tuple[list, list]:
    """(seed shares, key shares) of ``victim`` in the unmasking responses the server received."""
    seeds, keys = [], []
    for holder, messages in sent.items():
        for message in messages:
            if isinstance(message, UnmaskResponse):
                seeds += [(holder, limbs) for owner, limbs in message.seed_shares if owner == victim]
                keys += [(holder, limbs) for owner, limbs in message.key_shares if owner == victim]
    return seeds, keys


def _reconstruct(shares: list, threshold: int) -> bytes:
    chosen = sorted(shares)[:threshold]
    matrix = np.array([list(limbs) for _, limbs in chosen], dtype=np.uint64).reshape(threshold, SECRET_LIMBS)
    return limbs_to_secret(shamir.reconstruct(matrix, tuple(h for h, _ in chosen)).reshape(SECRET_LIMBS))


def strip_victim(config: SecAggConfig, sent: Mapping[int, list], victim: int, mask_peers: set[int]) -> np.ndarray | None:
    """The victim's input, if the server holds t shares of both its seed and its mask key (None if not):
    its masked input minus its self mask and its pairwise masks with ``mask_peers``."""
    seeds, keys = victim_shares(sent, victim)
    if len(seeds) < config.threshold or len(keys) < config.threshold:
        return None
    seed, private = _reconstruct(seeds, config.threshold), _reconstruct(keys, config.threshold)
    public = {m.sender: m.mask_public_key for ms in sent.values() for m in ms if isinstance(m, AdvertiseKeys)}
    masked = next(m.vector for m in sent[victim] if isinstance(m, MaskedInput))
    agreement = KeyAgreement(private)
    masks = [(self_mask_key(config, seed, victim), True)]  # the client added its self mask ...
    for peer in sorted(mask_peers):  # ... and +mask toward larger ids, -mask toward smaller ones
        key = pair_mask_key(config, agreement.agree(public[peer]), victim, peer)
        masks.append((key, not victim < peer))
    vector = np.array(masked, copy=True)
    MaskExpander(config.modulus).apply_many(vector, masks)
    return vector


# -- a full submodel round ----------------------------------------------------------------------------


def unwrap(message: object) -> object:
    return message.payload if isinstance(message, PhaseMessage) else message


@dataclass
class SubmodelRoundAttack:
    """A submodel round between real clients (over ``states``) and a server whose outgoing messages pass
    through ``tamper(recipient, message)`` (submodel messages; secure-aggregation ones inside
    :class:`PhaseMessage`)."""

    states: Mapping[int, DeviceState]
    model: object
    settings: RoundSettings
    round_index: int = 0
    tamper: Tamper = honest
    random_source: Callable[[int], Callable[[int], bytes]] | None = None
    client_class: type[SubmodelRoundClient] = SubmodelRoundClient
    server_class: type[SubmodelRoundServer] | None = None  # a malicious server's own logic (None: the honest one)
    sent: dict[int, list] = field(default_factory=lambda: defaultdict(list))  # client -> submodel messages
    received: dict[int, list] = field(default_factory=lambda: defaultdict(list))  # client -> what it got
    errors: dict[int, FedPrivacyError] = field(default_factory=dict)
    aborted: RoundAborted | None = None
    server: SubmodelRoundServer | None = None
    clients: dict[int, SubmodelRoundClient] = field(default_factory=dict)

    def run(self) -> SubmodelRoundServer:
        server_class = SubmodelRoundServer if self.server_class is None else self.server_class
        self.server = server = server_class(self.model, self.settings, sorted(self.states), self.round_index)
        for party, state in self.states.items():
            kwargs = {} if self.random_source is None else {"random_bytes": self.random_source(party)}
            self.clients[party] = self.client_class(state, party, **kwargs)

        def handler(party: int) -> Callable[[SubmodelMessage], list]:
            def on(message: SubmodelMessage) -> list:
                self.received[party].append(message)
                replies = self.clients[party].receive(message)
                self.sent[party].extend(replies)
                return replies
            return on

        link = _link(server, decode_submodel_message, {p: handler(p) for p in self.clients})
        outbound = server.start()
        try:
            while server.stage not in (RoundServerStage.COMPLETED, RoundServerStage.ABORTED):
                link.exchange(_Tampered(outbound, self.tamper, lambda item, m: item.recipient, set(self.clients)))
                outbound = link.close()
        except RoundAborted as exc:
            self.aborted = exc
        finally:
            self.errors.update(link.counters.errors)
        return server

    def secagg_sent(self, phase: Phase) -> dict[int, list]:
        """The secure-aggregation messages each client sent in ``phase``."""
        return {party: [m.payload for m in messages if isinstance(m, PhaseMessage) and m.phase is phase]
                for party, messages in self.sent.items()}


def strip_row_self_mask(config: SecAggConfig, sent: Mapping[int, list], owner: int, rows: np.ndarray,
                        width: int) -> np.ndarray | None:
    """``owner``'s per-row upload (rows x width) with its self mask removed, if the server holds t shares
    of its seed (what the unmasking of a live party gives it): rows it shared with no masking peer are
    then in the clear."""
    seeds, _ = victim_shares(sent, owner)
    if len(seeds) < config.threshold:
        return None
    seed = _reconstruct(seeds, config.threshold)
    masked = next(m.vector for m in sent[owner] if isinstance(m, MaskedInput))
    stream = row_keystream(self_mask_key(config, seed, owner), rows, width, config.modulus)
    assert config.modulus is not Modulus.P61
    return (masked.reshape(-1, width) - stream.reshape(-1, width)).astype(masked.dtype)
