"""The secure-aggregation server: a sans-I/O state machine that sums masked inputs.

The driver feeds client messages to :meth:`SecAggServer.receive` and calls
:meth:`SecAggServer.close_stage` when a stage's deadline passes (or everyone expected answered); the
server freezes the set of responders (U1, U2, U3, U5), checks that enough parties remain, and
returns the messages to deliver. Messages from parties outside the current set, duplicates, and
messages for a stage already closed are counted in ``ignored`` and never merged.

Dropouts are handled at every stage: parties that never shared keys are not in U2 and nobody is ever
asked for their shares; parties in U2 that sent no masked input have their pairwise masks with their
surviving neighbours removed through their reconstructed mask key; the self masks of U3 are removed
through reconstructed seeds. Each secret is rebuilt from exactly t shares (the t smallest holder
ids), all secrets in one batch (Lagrange coefficients computed once per distinct holder set). The
masks are then taken out by :mod:`.unmasking`: in this thread by default, or split over the local
worker processes a caller passes as ``workers`` (they receive rebuilt secrets: see that module).

Below t at any step the round aborts with :class:`RoundAborted` and no output. What the server
learns: ``protocols/secagg/spec.md`` §1 and §8. Memory beyond the received share material is O(D): uploads are added in place.

Malicious mode (``config.malicious``, spec §14): with a :class:`TrustStore` the server checks every
advertisement and consistency signature and ignores bad ones (a corrupt client then cannot make
honest ones abort); after U3 it asks U3 to sign U3, and sends the unmasking request only to the
signers U4, forwarding to each just enough signatures: the config's quorum (a majority) on the full
graph; on a SecAgg+ graph the signers nearest to it on the ring that give t among the holders of
each of its mask peers. Without
a trust store it forwards signatures unchecked (clients check them anyway). Two sums advertised with
one signature (``joint``, spec §14.8) leave the advertisement check to whoever runs both
(:meth:`SecAggServer.reject_advertisement`); the verifying one broadcasts the joint signatures with
the partner keys (:meth:`SecAggServer.set_partner_keys`), the covered one its keys unsigned.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum

import numpy as np

from ..errors import InvalidParameters, LocalProtocolError, RoundAborted
from ..hazmat import shamir
from ..hazmat.field import P61, Modulus, add_inplace, dtype_of, reduce_p61_inplace
from ..hazmat.kex import canonical_public_key, is_usable_public_key, public_key
from .graph import all_neighbourhoods, ring_order
from .identity import TrustStore, advertisement_statement, consistency_statement
from .masking import limbs_to_secret, self_mask_key
from .messages import (
    CIPHERTEXT_BYTES,
    SECRET_LIMBS,
    AdvertiseKeys,
    ConsistencyRequest,
    ConsistencyResponse,
    KeyBroadcast,
    MaskedInput,
    Message,
    PackedCiphertexts,
    PackedShares,
    PeerKeys,
    PeerKeyTable,
    RoutedShares,
    ShareKeys,
    UnmaskRequest,
    UnmaskResponse,
)
from .params import SecAggConfig
from .rows import RowPlan
from .stages import MALICIOUS_SERVER_TRANSITIONS, SERVER_TRANSITIONS, ServerEvent, ServerStage
from .unmasking import DropoutMasks, UnmaskingWorkers, remove_masks

__all__ = ["SecAggServer", "SecAggOutbound", "IgnoredMessage"]

_EVENT_OF = {
    AdvertiseKeys: ServerEvent.ADVERTISE_KEYS,
    ShareKeys: ServerEvent.SHARE_KEYS,
    MaskedInput: ServerEvent.MASKED_INPUT,
    UnmaskResponse: ServerEvent.UNMASK_RESPONSE,
    ConsistencyResponse: ServerEvent.CONSISTENCY_RESPONSE,
}


@dataclass(frozen=True, slots=True)
class SecAggOutbound:
    """A message for one party."""

    recipient: int
    message: Message


class IgnoredReason(Enum):
    LATE = "late"  # for a stage already closed, or from a party already declared dropped
    DUPLICATE = "duplicate"
    UNKNOWN_PARTY = "unknown-party"
    INVALID = "invalid"  # breaks the protocol (wrong recipients, lengths, reused keys, ...)


@dataclass(frozen=True, slots=True)
class IgnoredMessage:
    party_id: int
    message_type: str
    reason: IgnoredReason
    detail: str = ""


class SecAggServer:
    """Server side of one round. See the module docstring for the contract."""

    def __init__(self, config: SecAggConfig, row_plan: RowPlan | None = None, trust: TrustStore | None = None,
                 *, per_row: bool = False, joint: str | None = None, workers: UnmaskingWorkers | None = None) -> None:
        """``workers``: local worker processes for the unmasking (:class:`~.unmasking.UnmaskingWorkers`;
        they receive rebuilt secrets, so only the server's own processes); default: this thread."""
        if row_plan is not None:
            if config.dim != row_plan.dim or set(row_plan.chosen) != set(config.party_ids):
                raise InvalidParameters("the row plan must cover every party and config.dim = rows x width")
        if trust is not None and not config.malicious:
            raise InvalidParameters("a trust store is for malicious-mode rounds")
        if joint not in (None, "covered", "verifying") or (joint is not None and not config.malicious):
            raise InvalidParameters("a joint advertisement is 'covered' or 'verifying', in malicious mode")
        if joint == "verifying" and not config.full_graph:
            raise InvalidParameters("the verifying sum of a joint advertisement is a full graph")
        # Two sums advertised with one signature (spec §14.8): their advertisement signatures are
        # checked by whoever runs both (reject_advertisement), not here; "covered" broadcasts its keys
        # unsigned, "verifying" with the joint signature and the partner keys (set_partner_keys).
        self.joint = joint
        self._partner_keys: dict[int, tuple[bytes, bytes]] | None = None
        if workers is not None and not isinstance(workers, UnmaskingWorkers):
            raise InvalidParameters("workers must be UnmaskingWorkers (e.g. UnmaskingWorkers.from_executor)")
        self.workers = workers
        self.row_plan = row_plan
        # ``per_row`` without a plan: the keys and shares are exchanged first, config.dim is the rows'
        # block width, and the plan is fixed by :meth:`set_row_plan` before any masked input.
        self.per_row = per_row and row_plan is None
        self.config = config
        self.trust = trust
        self._transitions = MALICIOUS_SERVER_TRANSITIONS if config.malicious else SERVER_TRANSITIONS
        self.stage = ServerStage.COLLECTING_KEYS
        self.neighbours = all_neighbourhoods(config)
        # Malicious mode on a sparse graph: ring positions, to pick the signatures each party needs.
        self._ring = ring_order(config) if config.malicious and not config.full_graph else None
        self._position = None if self._ring is None else {party: index for index, party in enumerate(self._ring)}
        self.ignored: list[IgnoredMessage] = []
        self.abort_error: RoundAborted | None = None
        self._keys: dict[int, tuple[bytes, bytes]] = {}  # U1: party -> (channel pk, mask pk)
        self._advertised: np.ndarray | None = None  # U1 as an increasing array, once the key stage closed
        self._seen_keys: set[bytes] = set()  # canonical X25519 encodings
        self._signatures_of_keys: dict[int, bytes] = {}  # malicious mode: advertisement signatures
        self._shares: dict[int, ShareKeys | None] = {}  # U2 (the messages are dropped once routed)
        self._input_ids: set[int] = set()  # U3
        self._sum = np.zeros(0 if self.per_row else config.dim, dtype=dtype_of(config.modulus))
        self._unreduced = 0  # mod p: uploads added since the last fold (at most 7 fit in 64 bits)
        self._survivor_statement = b""
        self._signatures: dict[int, bytes] = {}  # U4 (malicious mode): party -> consistency signature
        self._requests: dict[int, UnmaskRequest] = {}
        self._responses: dict[int, UnmaskResponse] = {}  # U5
        self._result: np.ndarray | None = None

    # -- views ------------------------------------------------------------------------------------

    @property
    def advertised_ids(self) -> frozenset[int]:
        """U1: parties whose keys were accepted."""
        return frozenset(self._keys)

    @property
    def shared_ids(self) -> frozenset[int]:
        """U2: parties that distributed shares."""
        return frozenset(self._shares)

    @property
    def input_ids(self) -> frozenset[int]:
        """U3: parties whose masked input is in the sum."""
        return frozenset(self._input_ids)

    @property
    def signed_ids(self) -> frozenset[int]:
        """U4 (malicious mode): parties whose consistency signature was accepted."""
        return frozenset(self._signatures)

    @property
    def unmask_ids(self) -> frozenset[int]:
        """U5: parties that answered the unmasking request."""
        return frozenset(self._responses)

    @property
    def expected_ids(self) -> frozenset[int]:
        """Parties whose message for the current stage has not arrived yet."""
        if self.stage is ServerStage.COLLECTING_KEYS:
            return frozenset(self.config.party_ids) - self.advertised_ids
        if self.stage is ServerStage.COLLECTING_SHARES:
            return self.advertised_ids - self.shared_ids
        if self.stage is ServerStage.COLLECTING_INPUTS:
            return self.shared_ids - self.input_ids
        if self.stage is ServerStage.COLLECTING_SIGNATURES:
            return self.input_ids - self.signed_ids
        if self.stage is ServerStage.COLLECTING_UNMASKING:
            return frozenset(self._requests) - self.unmask_ids
        return frozenset()

    @property
    def result(self) -> np.ndarray:
        """The sum of the inputs of exactly the parties in U3 (read-only)."""
        if self._result is None:
            raise LocalProtocolError(f"no result in stage {self.stage.value}")
        return self._result

    def set_row_plan(self, plan: RowPlan) -> None:
        """Fix the plan of a per-row sum set up without one (``per_row=True``): once, after the shares
        were routed and before any masked input. Every party of the plan must be in U2 (the peers it
        masks with are the sharers) and the plan's block width must be config.dim."""
        if not self.per_row or self.row_plan is not None:
            raise LocalProtocolError("only a per-row sum set up without a plan takes one, once")
        if self.stage is not ServerStage.COLLECTING_INPUTS or self._input_ids:
            raise LocalProtocolError(f"a row plan is fixed before the masked inputs, not in stage {self.stage.value}")
        if plan.width != self.config.dim:
            raise InvalidParameters("the row plan's block width must be the config's dim")
        if not set(plan.chosen) <= self.shared_ids:
            raise InvalidParameters("every party of the row plan must have shared its keys")
        self._sum = np.zeros(plan.dim, dtype=dtype_of(self.config.modulus))
        self.row_plan = plan

    # -- receiving --------------------------------------------------------------------------------

    def receive(self, message: Message) -> list[SecAggOutbound]:
        """Take one client message. Never raises for a client's misbehaviour: such messages are
        recorded in ``ignored`` and dropped. Returns no messages (stages close in :meth:`close_stage`)."""
        event = _EVENT_OF.get(type(message))
        sender = getattr(message, "sender", -1)
        if event is None:
            self._ignore(sender, message, IgnoredReason.INVALID, "not a client message")
            return []
        if (self.stage, event) not in self._transitions:
            self._ignore(sender, message, IgnoredReason.LATE, f"arrived in stage {self.stage.value}")
            return []
        handlers: dict[ServerEvent, Callable[..., None]] = {
            ServerEvent.ADVERTISE_KEYS: self._on_advertise,
            ServerEvent.SHARE_KEYS: self._on_share_keys,
            ServerEvent.MASKED_INPUT: self._on_masked_input,
            ServerEvent.UNMASK_RESPONSE: self._on_unmask_response,
            ServerEvent.CONSISTENCY_RESPONSE: self._on_consistency_response,
        }
        handlers[event](message)
        return []

    def _ignore(self, sender: int, message: Message, reason: IgnoredReason, detail: str = "") -> None:
        self.ignored.append(IgnoredMessage(sender, type(message).__name__, reason, detail))

    def _on_advertise(self, message: AdvertiseKeys) -> None:
        sender = message.sender
        if sender not in self.neighbours:
            return self._ignore(sender, message, IgnoredReason.UNKNOWN_PARTY)
        if sender in self._keys:
            return self._ignore(sender, message, IgnoredReason.DUPLICATE)
        keys = (message.channel_public_key, message.mask_public_key)
        if bool(message.signature) != self.config.malicious:
            return self._ignore(sender, message, IgnoredReason.INVALID, "signed iff the round is malicious")
        if not all(is_usable_public_key(key) for key in keys):
            return self._ignore(sender, message, IgnoredReason.INVALID, "not a usable X25519 public key")
        canonical = (canonical_public_key(keys[0]), canonical_public_key(keys[1]))  # the top bit is ignored
        if canonical[0] == canonical[1] or canonical[0] in self._seen_keys or canonical[1] in self._seen_keys:
            return self._ignore(sender, message, IgnoredReason.INVALID, "public key reused")
        if self.trust is not None and self.joint is None and not self.trust.verify(
            sender, message.signature, advertisement_statement(self.config, sender, *keys)
        ):
            return self._ignore(sender, message, IgnoredReason.INVALID, "advertisement signature does not verify")
        self._keys[sender] = keys
        self._signatures_of_keys[sender] = message.signature
        self._seen_keys.update(canonical)

    def _on_share_keys(self, message: ShareKeys) -> None:
        sender = message.sender
        if sender not in self._keys:
            return self._ignore(sender, message, IgnoredReason.LATE if sender in self.neighbours else IgnoredReason.UNKNOWN_PARTY)
        if sender in self._shares:
            return self._ignore(sender, message, IgnoredReason.DUPLICATE)
        if not self._addressed_to_neighbours(sender, message.ciphertexts):
            return self._ignore(sender, message, IgnoredReason.INVALID, "shares not addressed to exactly its neighbours")
        self._shares[sender] = message

    def _addressed_to_neighbours(self, sender: int, ciphertexts) -> bool:
        """Whether ``ciphertexts`` go to exactly the sender's neighbours in U1, once each. On the full
        graph with packed lists: one comparison of arrays against U1 (frozen when the keys closed)."""
        advertised = self._advertised
        if self.config.full_graph and isinstance(ciphertexts, PackedCiphertexts) and advertised is not None:
            parties = ciphertexts.parties
            return (parties.shape[0] == advertised.shape[0] - 1
                    and bool(np.array_equal(parties, advertised[advertised != sender])))
        recipients = _parties_of(ciphertexts)
        return set(recipients) == self.neighbours[sender] & self._keys.keys() and len(recipients) == len(set(recipients))

    def _on_masked_input(self, message: MaskedInput) -> None:
        sender = message.sender
        if sender not in self._shares:
            return self._ignore(sender, message, IgnoredReason.LATE if sender in self.neighbours else IgnoredReason.UNKNOWN_PARTY)
        if sender in self._input_ids:
            return self._ignore(sender, message, IgnoredReason.DUPLICATE)
        if self.per_row and (self.row_plan is None or sender not in self.row_plan.chosen):
            return self._ignore(sender, message, IgnoredReason.INVALID, "not in the row plan")
        expected = self.config.dim if self.row_plan is None else self.row_plan.chosen[sender].shape[0] * self.row_plan.width
        vector = message.vector
        if message.modulus is not self.config.modulus or vector.shape != (expected,):
            return self._ignore(sender, message, IgnoredReason.INVALID, "wrong modulus or length")
        if vector.dtype != dtype_of(self.config.modulus) and vector.dtype != dtype_of(self.config.modulus).newbyteorder("<"):
            return self._ignore(sender, message, IgnoredReason.INVALID, "wrong word type")
        if self.config.modulus is Modulus.P61 and vector.size and not message.in_range and int(vector.max()) >= P61:
            return self._ignore(sender, message, IgnoredReason.INVALID, "word out of range for the prime field")
        if self.row_plan is not None:
            self.row_plan.accumulate(self._sum, sender, message.vector, self.config.modulus)
        elif self.config.modulus is Modulus.P61:  # lazy: fold once every 7 uploads (each word < p)
            np.add(self._sum, message.vector, out=self._sum)
            self._unreduced += 1
            if self._unreduced == 7:
                reduce_p61_inplace(self._sum)
                self._unreduced = 0
        else:
            add_inplace(self._sum, message.vector, self.config.modulus)
        self._input_ids.add(sender)

    def _on_consistency_response(self, message: ConsistencyResponse) -> None:
        sender = message.sender
        if sender not in self._input_ids:
            return self._ignore(sender, message, IgnoredReason.LATE if sender in self.neighbours else IgnoredReason.UNKNOWN_PARTY)
        if sender in self._signatures:
            return self._ignore(sender, message, IgnoredReason.DUPLICATE)
        if self.trust is not None and not self.trust.verify(sender, message.signature, self._survivor_statement):
            return self._ignore(sender, message, IgnoredReason.INVALID, "consistency signature does not verify")
        self._signatures[sender] = message.signature

    def _on_unmask_response(self, message: UnmaskResponse) -> None:
        sender = message.sender
        request = self._requests.get(sender)
        if request is None:
            return self._ignore(sender, message, IgnoredReason.LATE if sender in self.neighbours else IgnoredReason.UNKNOWN_PARTY)
        if sender in self._responses:
            return self._ignore(sender, message, IgnoredReason.DUPLICATE)
        seed_owners = _owners_of(message.seed_shares)
        key_owners = _owners_of(message.key_shares)
        expected_seeds = tuple(sorted((*request.alive_ids, sender))) if self.config.full_graph else request.alive_ids
        if seed_owners != expected_seeds or key_owners != request.dropped_ids:
            return self._ignore(sender, message, IgnoredReason.INVALID, "shares do not answer the request")
        self._responses[sender] = message

    # -- closing stages ---------------------------------------------------------------------------

    def close_stage(self) -> list[SecAggOutbound]:
        """Freeze the current stage's responders and return the next messages (or the result).

        Raises :class:`RoundAborted` (and stays aborted) when fewer than t parties remain or a secret
        cannot be rebuilt.
        """
        target = self._transitions.get((self.stage, ServerEvent.CLOSE_STAGE))
        if target is None:
            raise LocalProtocolError(f"nothing to close in stage {self.stage.value}")
        closer = {
            ServerStage.COLLECTING_KEYS: self._close_keys,
            ServerStage.COLLECTING_SHARES: self._close_shares,
            ServerStage.COLLECTING_INPUTS: self._close_inputs,
            ServerStage.COLLECTING_SIGNATURES: self._close_signatures,
            ServerStage.COLLECTING_UNMASKING: self._close_unmasking,
        }[self.stage]
        try:
            out = closer()
        except RoundAborted as exc:
            self._abort(exc)
            raise
        except InvalidParameters as exc:  # e.g. a key agreement that fails: never leave half a stage
            error = RoundAborted(self.stage.value, f"unusable material from a client: {exc}")
            self._abort(error)
            raise error from exc
        self.stage = target
        return out

    def _abort(self, error: RoundAborted) -> None:
        self.stage = ServerStage.ABORTED
        self.abort_error = error
        self._sum = np.zeros(0, dtype=self._sum.dtype)
        self._responses.clear()

    def _require(self, stage: str, present: int, what: str) -> None:
        if present < self.config.threshold:
            raise RoundAborted(stage, f"{present} {what}, threshold is {self.config.threshold}")

    def _close_keys(self) -> list[SecAggOutbound]:
        self._require("advertise-keys", len(self._keys), "parties advertised keys")
        signed = self.config.malicious and self.joint != "covered"
        if self.joint == "verifying":
            partner = self._partner_keys
            if partner is None or not self._keys.keys() <= partner.keys():
                raise LocalProtocolError("a verifying sum needs every advertiser's partner keys (set_partner_keys)")
            entries = {peer: PeerKeys(peer, *keys, self._signatures_of_keys[peer], *partner[peer])
                       for peer, keys in self._keys.items()}
        else:
            entries = {peer: PeerKeys(peer, *keys, self._signatures_of_keys[peer] if signed else b"")
                       for peer, keys in self._keys.items()}
        # One PeerKeys and one encoded entry per party, shared by every broadcast that lists it: a
        # broadcast is a selection of the table's rows (full graph: every row but the recipient's).
        table = PeerKeyTable(list(entries.values()))
        joint = self.joint == "verifying"
        ids = table.ids
        self._advertised = ids
        out = []
        for at, party in enumerate(ids.tolist()):
            if self.config.full_graph:
                peers = table.all_but(at)
            else:
                wanted = np.fromiter(self.neighbours[party] & self._keys.keys(), dtype=np.int64)
                peers = table.select(np.searchsorted(ids, np.sort(wanted)))
            out.append(SecAggOutbound(party, KeyBroadcast(party, peers, signed, joint)))
        return out

    # -- joint advertisements (spec §14.8) ---------------------------------------------------------

    @property
    def advertisements(self) -> dict[int, tuple[bytes, bytes, bytes]]:
        """U1 so far: party -> (channel pk, mask pk, advertisement signature)."""
        return {party: (*keys, self._signatures_of_keys[party]) for party, keys in self._keys.items()}

    def reject_advertisement(self, party: int, detail: str) -> None:
        """Drop an accepted advertisement before the key stage closes (its joint signature failed, or its
        partner advertisement is missing); recorded as an invalid message."""
        if self.stage is not ServerStage.COLLECTING_KEYS or party not in self._keys:
            raise LocalProtocolError("only an advertisement of the open key stage can be rejected")
        keys = self._keys.pop(party)
        del self._signatures_of_keys[party]
        self._seen_keys.difference_update(canonical_public_key(key) for key in keys)
        self.ignored.append(IgnoredMessage(party, "AdvertiseKeys", IgnoredReason.INVALID, detail))

    def set_partner_keys(self, keys: dict[int, tuple[bytes, bytes]]) -> None:
        """Verifying sum: each advertiser's keys of the covered sum, sent with its joint signature."""
        if self.joint != "verifying" or self.stage is not ServerStage.COLLECTING_KEYS:
            raise LocalProtocolError("partner keys go to a verifying sum before its key stage closes")
        self._partner_keys = dict(keys)

    def _holders_in(self, owner: int, present: frozenset[int] | set[int]) -> int:
        """How many of ``owner``'s share holders (its neighbours that got shares, and itself in the full
        graph) are present."""
        # ``present`` is always a subset of U1 (U2, U3 or U4), so no intersection with U1 is needed.
        if self.config.full_graph:  # every other party, and itself: all of ``present``
            return len(present)
        count = len(self.neighbours[owner] & present)
        return count + 1 if self.config.full_graph and owner in present else count

    def _close_shares(self) -> list[SecAggOutbound]:
        shared = self.shared_ids
        self._require("share-keys", len(shared), "parties shared keys")
        for owner in sorted(shared):
            self._require("share-keys", self._holders_in(owner, shared), f"share holders of party {owner} remain")
        senders = sorted(shared)
        messages = [self._shares[sender] for sender in senders]
        assert all(message is not None for message in messages)  # the messages are dropped only below, once
        packed = [message.ciphertexts for message in messages if message is not None]
        if all(isinstance(entries, PackedCiphertexts) for entries in packed):
            outbound = _route_packed(senders, packed, shared)  # type: ignore[arg-type]
            self._shares = dict.fromkeys(self._shares)
            return outbound
        routed: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
        for sender, message in zip(senders, messages):
            for recipient, ciphertext in message.ciphertexts:  # type: ignore[union-attr]
                if recipient in shared:
                    routed[recipient].append((sender, ciphertext))
        self._shares = dict.fromkeys(self._shares)  # routed: the server keeps only who shared
        return [SecAggOutbound(party, RoutedShares(party, tuple(routed[party]))) for party in senders]

    def mask_peers(self, party: int) -> frozenset[int]:
        """The parties ``party`` masked with: its neighbours in U2 (once U2 is frozen)."""
        return self.neighbours[party] & self.shared_ids

    def _close_inputs(self) -> list[SecAggOutbound]:
        if self._unreduced:
            reduce_p61_inplace(self._sum)
            self._unreduced = 0
        alive = self.input_ids
        self._require("masked-input", len(alive), "masked inputs arrived")
        for owner in sorted(self.shared_ids):
            self._require("masked-input", self._holders_in(owner, alive), f"share holders of party {owner} remain")
        if self.config.malicious:
            survivors = tuple(sorted(alive))
            self._survivor_statement = consistency_statement(self.config, survivors)
            return [SecAggOutbound(party, ConsistencyRequest(party, survivors)) for party in survivors]
        out = []
        for party, (alive_peers, dropped_peers) in self._peer_lists(sorted(alive), alive):
            request = UnmaskRequest(party, alive_peers, dropped_peers)
            self._requests[party] = request
            out.append(SecAggOutbound(party, request))
        return out

    def _peer_lists(self, parties: list[int], alive: frozenset[int]) -> Iterator[tuple[int, tuple[tuple[int, ...], tuple[int, ...]]]]:
        """For each of ``parties`` (increasing): its mask peers (neighbours in U2) in ``alive`` and not,
        each increasing. On the full graph those are U3 and U2 - U3 without the party itself: the two
        sorted lists are made once and each party's is a copy without its own id."""
        shared = self.shared_ids
        if not self.config.full_graph:
            for party in parties:
                peers = self.neighbours[party] & shared
                yield party, (tuple(sorted(peers & alive)), tuple(sorted(peers - alive)))
            return
        living, gone = tuple(sorted(alive & shared)), tuple(sorted(shared - alive))
        position = {party: at for at, party in enumerate(living)}
        for party in parties:
            at = position.get(party)
            if at is not None:
                yield party, (living[:at] + living[at + 1:], gone)
            else:  # not among the living: every living one is a peer; itself is never its own peer
                yield party, (living, tuple(p for p in gone if p != party))

    def _close_signatures(self) -> list[SecAggOutbound]:
        """U4 frozen: every party of U2 must keep t signers among its share holders (else no client
        would answer); each signer gets its split and the signatures of its peers' holders."""
        signers = self.signed_ids
        self._require("consistency-check", len(signers), "consistency signatures arrived")
        if len(signers) < self.config.quorum:  # full graph: no client would answer
            raise RoundAborted("consistency-check", f"{len(signers)} consistency signatures, the quorum is {self.config.quorum}")
        shared = self.shared_ids
        for owner in sorted(shared):
            present = self._holders_in(owner, signers)
            if present < self.config.threshold:
                self._require("consistency-check", present, f"signers among party {owner}'s holders")
        alive = self.input_ids
        entries = {signer: (signer, self._signatures[signer]) for signer in signers}
        parties = sorted(signers)
        enough = tuple(map(entries.__getitem__, parties[: self.config.quorum]))  # full graph: any quorum
        near = None if self._ring is None else self._signatures_near_all(parties, self._ring, self._position, entries)
        out = []
        for party, (alive_peers, dropped_peers) in self._peer_lists(parties, alive):  # its mask peers
            signatures = enough if near is None else near[party]
            request = UnmaskRequest(party, alive_peers, dropped_peers, signatures)
            self._requests[party] = request
            out.append(SecAggOutbound(party, request))
        return out

    def _signatures_near_all(self, parties, ring, position, entries) -> dict[int, tuple[tuple[int, bytes], ...]]:
        """Enough signatures for each of ``parties``: t signers among the neighbours of each of its peers.

        Neighbourhoods are ring windows of radius h = k/2, so every signer that can count lies within
        2h of a party; each party gets the signers within the smallest radius R that gives each of its
        peers (its neighbours in U2) t signers in the peer's neighbourhood. All parties at once: the
        signer flags of each party's ring window (n x (4h + 1)), their prefix sums, and the count of
        every (peer offset, radius) pair read from them. On a ring too small for that geometry (the
        windows wrap), all signers of the peers' neighbourhoods."""
        n, half, t = len(ring), self.config.neighbours // 2, self.config.threshold
        shared = self._shares
        if 4 * half + 1 > n:  # windows wrap around the ring
            out = {}
            for party in parties:
                peers = self.mask_peers(party)
                near = set().union(*(self.neighbours[peer] for peer in peers)) if peers else set()
                out[party] = tuple(map(entries.__getitem__, sorted(entries.keys() & near)))
            return out
        reach = 2 * half
        ring_ids = np.asarray(ring, dtype=np.int64)
        signed_at = np.fromiter((party in entries for party in ring), dtype=bool, count=n)
        shared_at = np.fromiter((party in shared for party in ring), dtype=bool, count=n)
        bases = np.fromiter((position[party] for party in parties), dtype=np.int64, count=len(parties))
        span = np.arange(-reach, reach + 1)
        window = (bases[:, None] + span[None, :]) % n  # ring positions of each party's window
        signed = signed_at[window].astype(np.int32)  # (m, 4h + 1)
        prefix = np.zeros((len(parties), 2 * reach + 2), dtype=np.int32)
        np.cumsum(signed, axis=1, out=prefix[:, 1:])
        offsets = np.concatenate([np.arange(-half, 0), np.arange(1, half + 1)])  # a party's possible peers
        is_peer = shared_at[(bases[:, None] + offsets[None, :]) % n]  # (m, 2h): the neighbour is in U2
        radii = np.arange(max(t - 1, 0), reach + 1)
        low = np.maximum(offsets[:, None] - half, -radii[None, :])  # (2h, radii): N(peer) within radius
        high = np.minimum(offsets[:, None] + half, radii[None, :])
        inside = (np.abs(offsets)[:, None] <= radii[None, :]).astype(np.int32)  # the peer itself is no holder
        counts = prefix[:, high + reach + 1] - prefix[:, low + reach] - signed[:, offsets + reach][:, :, None] * inside[None]
        enough = ((counts >= t) | ~is_peer[:, :, None]).all(axis=1)  # (m, radii)
        chosen_radius = np.where(enough.any(axis=1), radii[np.argmax(enough, axis=1)], reach)
        take = signed.astype(bool) & (np.abs(span)[None, :] <= chosen_radius[:, None]) & is_peer.any(axis=1)[:, None]
        beyond = np.int64(1) << 62  # sorts after every party id: the chosen signers come first, by id
        chosen = np.sort(np.where(take, ring_ids[window], beyond), axis=1).tolist()
        lookup = entries.__getitem__
        return {
            party: tuple(map(lookup, ids[:count]))
            for party, ids, count in zip(parties, chosen, take.sum(axis=1).tolist())
        }

    def _close_unmasking(self) -> list[SecAggOutbound]:
        """Rebuild the secrets, check each rebuilt mask key against its public key, and take every
        survivor's self mask and every dropout's pair masks out of the sum (:mod:`.unmasking`: in one
        chunk here, or in a few on ``self.workers``; the same sum either way)."""
        config = self.config
        self._require("unmasking", len(self._responses), "unmasking responses arrived")
        alive = sorted(self._input_ids)
        dropped = sorted(self.shared_ids - self._input_ids)
        seeds = self._reconstruct("seed", alive)
        mask_keys = self._reconstruct("key", dropped)
        plan = self.row_plan
        self_keys = [self_mask_key(config, seeds[owner], owner) for owner in alive]
        for owner in dropped:  # every rebuilt key checked before anything is unmasked
            if public_key(mask_keys[owner]) != self._keys[owner][1]:
                raise RoundAborted("unmasking", f"shares of party {owner}'s mask key do not match its public key")
        built = (self._dropout_masks(owner, mask_keys[owner]) for owner in dropped)
        # Serial and per row, one dropout's shared positions are alive at a time (about 9 MB each at
        # n = 1,000); workers need them all up front to plan their chunks.
        dropouts: Iterable[DropoutMasks] = (masks for masks in built if masks is not None)
        if plan is None or self.workers is not None:
            dropouts = list(dropouts)
        if plan is None:
            remove_masks(config, self._sum, self_keys, dropouts, workers=self.workers)
        else:
            remove_masks(config, self._sum, self_keys, dropouts, self_positions=[plan.positions(owner) for owner in alive],
                         union=plan.union, width=plan.width, workers=self.workers)
        self._sum.setflags(write=False)
        self._result = self._sum
        return []

    def _dropout_masks(self, owner: int, private: bytes) -> DropoutMasks | None:
        """What takes ``owner``'s pair masks out: its surviving mask peers and their keys; per row only
        the peers that share a row with it (the others added no pair mask for it), with the rows
        (None: no surviving peer masked with it)."""
        peers = self.mask_peers(owner) & self._input_ids
        plan = self.row_plan
        if plan is None:
            ordered = sorted(peers)
            return DropoutMasks(owner, private, tuple(ordered), tuple(self._keys[peer][1] for peer in ordered))
        if owner not in plan.chosen:
            return None
        # increasing peers; positions among the owner's rows as int32 (workers hold every dropout's at once)
        narrow = np.int32 if plan.chosen[owner].shape[0] < 1 << 31 else np.int64
        sharing = [(peer, where) for peer, where in plan._shared_positions(owner, dtype=narrow) if peer in peers]
        if not sharing:
            return None
        offsets = np.zeros(len(sharing) + 1, dtype=np.int64)
        np.cumsum([where.shape[0] for _, where in sharing], out=offsets[1:])
        return DropoutMasks(owner, private, tuple(peer for peer, _ in sharing),
                            tuple(self._keys[peer][1] for peer, _ in sharing), plan.chosen[owner],
                            plan.positions(owner), offsets, np.concatenate([where for _, where in sharing]))

    def _reconstruct(self, kind: str, owners: list[int]) -> dict[int, bytes]:
        """Rebuild each owner's seed or mask key from exactly t shares (the t smallest holder ids that
        answered for it), all in one batch (Lagrange weights once per distinct holder set).

        Each response's shares are packed once into an (owners, limbs) array; which holders answered
        for which owner is a (holders, owners) table, and the t chosen holders of every owner are read
        from its running count -- no per-share Python objects beyond the decoded messages."""
        threshold = self.config.threshold
        if not owners:
            return {}
        holders = sorted(self._responses)
        wanted = np.asarray(owners, dtype=np.int64)
        present = np.zeros((len(holders), wanted.shape[0]), dtype=bool)
        where = np.zeros((len(holders), wanted.shape[0]), dtype=np.int64)
        tables = []
        for row, holder in enumerate(holders):
            response = self._responses[holder]
            pairs = response.seed_shares if kind == "seed" else response.key_shares
            if isinstance(pairs, PackedShares):  # decoded from the wire: already arrays
                ids, limbs = pairs.owners, pairs.limbs
            else:
                ids = np.fromiter((owner for owner, _ in pairs), dtype=np.int64, count=len(pairs))
                limbs = np.array([limbs for _, limbs in pairs], dtype=np.uint64).reshape(len(pairs), SECRET_LIMBS)
            tables.append(limbs)
            if not len(pairs):
                continue
            order = np.argsort(ids, kind="stable")  # owners are sorted in a valid response; cheap if so
            at = np.minimum(np.searchsorted(ids, wanted, sorter=order), len(pairs) - 1)
            where[row] = order[at]
            present[row] = ids[order[at]] == wanted
        counts = present.sum(axis=0)
        short = np.flatnonzero(counts < threshold)
        if short.shape[0]:
            first = int(short[0])
            raise RoundAborted("unmasking", f"{int(counts[first])} shares of party {owners[first]}'s {kind}, threshold is {threshold}")
        chosen = present & (np.cumsum(present, axis=0) <= threshold)  # each owner's t smallest holders
        # All owners at once: (owners, t) holder rows, their x-coordinates (holder ids) and shares.
        _, holder_rows = np.nonzero(chosen.T)  # by owner, then by holder
        rows: np.ndarray = holder_rows.reshape(wanted.shape[0], threshold)
        offsets = np.cumsum([0] + [table.shape[0] for table in tables])[:-1]
        flat = np.concatenate(tables) if tables else np.zeros((0, SECRET_LIMBS), dtype=np.uint64)
        shares = flat[offsets[rows] + np.take_along_axis(where.T, rows, axis=1)]  # (owners, t, limbs)
        xs = np.asarray(holders, dtype=np.int64)[rows]
        values = shamir.reconstruct_many(shares, xs)
        secrets: dict[int, bytes] = {}
        for owner, limbs in zip(owners, values):
            try:
                secrets[owner] = limbs_to_secret(limbs)
            except ValueError:
                raise RoundAborted("unmasking", f"shares of party {owner}'s {kind} are inconsistent") from None
        return secrets


def _parties_of(ciphertexts) -> list[int]:
    if isinstance(ciphertexts, PackedCiphertexts):
        return ciphertexts.parties.tolist()
    return [party for party, _ in ciphertexts]


def _owners_of(shares) -> tuple[int, ...]:
    if isinstance(shares, PackedShares):
        return tuple(shares.owners.tolist())
    return tuple(owner for owner, _ in shares)


def _route_packed(senders: list[int], lists: list[PackedCiphertexts], shared) -> list[SecAggOutbound]:
    """Every sender's ciphertexts for a recipient in ``shared``, regrouped by recipient (senders in
    increasing order within each), as arrays: one stable sort of the recipients, then each sender's
    ciphertexts put straight where they go in one buffer (no concatenated copy: at n = 1,000 a fresh
    100 MB array costs more in page faults than the copy itself); each recipient's list is a slice."""
    sizes = np.array([len(entries) for entries in lists], dtype=np.int64)
    recipients = np.concatenate([entries.parties for entries in lists]) if lists else np.zeros(0, dtype=np.int64)
    origin = np.repeat(np.asarray(senders, dtype=np.int64), sizes)
    members = np.asarray(sorted(shared), dtype=np.int64)
    keep = np.isin(recipients, members)
    order = np.flatnonzero(keep)[np.argsort(recipients[keep], kind="stable")]  # by recipient, then sender
    destination = np.full(recipients.shape[0], -1, dtype=np.int64)  # where each sent entry goes (-1: nowhere)
    destination[order] = np.arange(order.shape[0], dtype=np.int64)
    whole = np.dtype((np.void, CIPHERTEXT_BYTES))  # moved as opaque rows: one copy each
    gathered = np.empty((order.shape[0], CIPHERTEXT_BYTES), dtype=np.uint8)
    rows = gathered.view(whole).reshape(-1)
    at = 0
    for size, listed in zip(sizes.tolist(), lists):
        where = destination[at : at + size]
        at += size
        kept = where >= 0
        body = np.ascontiguousarray(listed.ciphertexts).view(whole).reshape(-1)
        if bool(kept.all()):
            np.put(rows, where, body)
        else:
            np.put(rows, where[kept], body[kept])
    by_recipient = recipients[order]
    from_sender = origin[order]
    from_sender.setflags(write=False)
    gathered.setflags(write=False)
    bounds = np.searchsorted(by_recipient, members, side="left").tolist() + [by_recipient.shape[0]]
    return [SecAggOutbound(party, RoutedShares(party, PackedCiphertexts(from_sender[bounds[at] : bounds[at + 1]],
                                                                  gathered[bounds[at] : bounds[at + 1]])))
            for at, party in enumerate(members.tolist())]
