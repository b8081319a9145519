"""The secure-aggregation client: a sans-I/O state machine (messages in, messages out).

Threat model: ``protocols/secagg/spec.md`` §1 (and §14 for malicious mode). What leaves this client: its two
X25519 public keys, Shamir shares of its mask private key and self-mask seed (each encrypted to one
neighbour), its masked input, and -- once -- for each neighbour, *either* that neighbour's self-mask
seed share (if the server says it is alive) *or* its mask-key share (if the server says it dropped).

The client refuses (aborts, releases nothing more) an unmasking request whose alive and dropped sets
overlap, name a party outside the neighbours it exchanged shares with, omit one of them, leave fewer
than t holders alive, or differ from a request it already answered. A share ciphertext that fails
authentication, or any message that breaks the protocol, also aborts the client.

In malicious mode (``config.malicious``; spec §14) the client also needs its :class:`Identity` and
the deployment's :class:`TrustStore`: it signs its key advertisement, refuses a key broadcast with an
unknown identity or a bad signature, signs the survivor set U3 the server presents (once), and
answers the unmasking request only if it is exactly the split U3 implies and the server forwards
valid signatures over that same U3 -- on the full graph at least the config's quorum (a majority
over the corrupt parties its policy assumes, checked at construction), on a SecAgg+ graph at least t
from the share holders of every peer whose share it releases. Two sums of one party that advertise
together (:func:`start_jointly`, spec §14.8) sign once: the full-graph one checks each peer's joint
signature over both key pairs, the other compares its peers' keys with those. It then leaks nothing beyond the semi-malicious case except the two signatures.
A client with an identity requires malicious mode (a default, semi-malicious policy becomes
``MALICIOUS``) and refuses a config that is not malicious with a
:class:`~fedprivacy.errors.PolicyViolation` (a downgrade).
Before anything is released (at construction) the client checks the config against its own
:class:`~fedprivacy.policy.ClientPolicy`: enough parties, a threshold at least the one safe against
the policy's adversary for this (n, k), and a vector it may allocate
(``protocols/secagg/spec.md``, "Client policy"); otherwise :class:`~fedprivacy.errors.PolicyViolation`.

A host that cannot keep the object alive between two messages (one process per message, as a Flower
SuperNode runs its ClientApp) saves it with :meth:`SecAggClient.snapshot` and brings it back with
:meth:`SecAggClient.restore`. The snapshot holds the client's secrets: it belongs in the client's own
storage, never on the wire. The host must never restore a snapshot older than the last message the
client sent (persist before sending; spec §14.6): an older one may answer a second, different split.
In malicious mode a snapshot taken after signing binds the client to its signed U3, so a restored
one can only ever repeat the same split (a different one is refused); a snapshot from before the
signature cannot know it signed and relies on the host's guarantee.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..encoding import ProtocolCode, Reader, Writer, check_strictly_increasing
from ..errors import (
    DecodeError,
    FedPrivacyError,
    InvalidCiphertext,
    InvalidParameters,
    LocalProtocolError,
    PolicyViolation,
    RemoteProtocolError,
)
from ..hazmat import shamir
from ..hazmat.field import P61, Modulus, dtype_of, modulus_value
from ..hazmat.kex import KEY_BYTES, KeyAgreement, canonical_public_key, generate_keypair
from ..hazmat.prg import MaskExpander, RandomSource, system_random_bytes
from .graph import neighbourhood, ring_order
from .identity import (
    Identity,
    TrustStore,
    advertisement_statement,
    consistency_statement,
    joint_advertisement_statement,
)
from .masking import (
    MASK_KEY_BYTES,
    decrypt_share,
    encrypt_share,
    pair_mask_key,
    secret_to_limbs,
    self_mask_key,
    share_channel_key,
)
from .messages import (
    SECRET_LIMBS,
    AdvertiseKeys,
    ConsistencyRequest,
    ConsistencyResponse,
    KeyBroadcast,
    MaskedInput,
    Message,
    PackedShares,
    RoutedShares,
    ShareKeys,
    UnmaskRequest,
    UnmaskResponse,
    decode_message,
)
from .packed import PackedTable, pack_byte_pairs, pack_bytes, pack_limb_pairs
from .params import MAX_CLIENTS, MAX_DIM, Adversary, SecAggConfig
from .policy import SecAggPolicy
from .rows import ClientRowPlan
from .stages import CLIENT_TRANSITIONS, MALICIOUS_CLIENT_TRANSITIONS, ClientEvent, ClientStage

__all__ = ["SecAggClient", "coerce_input", "start_jointly"]

_STATE_TYPE = 9  # local persistence of a client (never sent): see SecAggClient.snapshot
_JOINT_STATE_TYPE = 19  # the same for a jointly advertised sum (spec §14.8): its role and partner follow
_JOINT_CODES = {"covered": 1, "verifying": 2}
_JOINT_OF_CODE = {code: role for role, code in _JOINT_CODES.items()}
_STAGE_CODES = {stage: code for code, stage in enumerate(ClientStage)}
_STAGE_OF_CODE = {code: stage for stage, code in _STAGE_CODES.items()}
_RELEASED_CODES = {"seed": 1, "key": 2}
_RELEASED_OF_CODE = {code: kind for kind, code in _RELEASED_CODES.items()}
_MAX_BLOB = 64 + 16 * MAX_DIM  # bounds a nested encoding (config, response, row plan)

_EVENT_OF = {
    KeyBroadcast: ClientEvent.KEY_BROADCAST,
    RoutedShares: ClientEvent.ROUTED_SHARES,
    UnmaskRequest: ClientEvent.UNMASK_REQUEST,
    ConsistencyRequest: ClientEvent.CONSISTENCY_REQUEST,
}


def coerce_input(vector: object, config: SecAggConfig, length: int | None = None) -> np.ndarray:
    """A validated private copy of an input vector in the modulus' dtype (``InvalidParameters`` if not)."""
    array = np.asarray(vector)
    length = config.dim if length is None else length
    if array.ndim != 1 or array.shape[0] != length:
        raise InvalidParameters(f"input must be a vector of length {length}, got shape {array.shape}")
    if array.dtype.kind not in "ui":
        raise InvalidParameters(f"input must hold integers (quantize floats first), got dtype {array.dtype}")
    if array.dtype == dtype_of(config.modulus) and config.modulus is not Modulus.P61:
        return np.array(array, dtype=array.dtype, copy=True)  # every word is a valid residue
    if array.size:
        low, high = int(array.min()), int(array.max())
        if low < 0 or high >= modulus_value(config.modulus):
            raise InvalidParameters(f"input values must be in [0, {modulus_value(config.modulus)}), got [{low}, {high}]")
    return np.array(array, dtype=dtype_of(config.modulus), copy=True)


class SecAggClient:
    """One party of a secure sum. Drive it with :meth:`start`, :meth:`receive` and :meth:`submit_input`.

    ``random_bytes`` is the source of every secret this client draws (keys, seed, Shamir
    coefficients); it defaults to the OS CSPRNG and exists so vectors can replay a run.

    With ``row_plan`` the client sums per row (:mod:`fedprivacy.secagg.rows`): its input is one block
    of ``row_plan.width`` words per chosen row, masked per row (on a sparse graph, with its neighbours only).

    ``identity`` and ``trust`` are required in malicious mode; an identity with a config that is not
    malicious is refused (``PolicyViolation``), so a server cannot downgrade such a client.
    ``policy`` (a :class:`~fedprivacy.secagg.policy.SecAggPolicy`, such as the client's
    :class:`~fedprivacy.policy.ClientPolicy`; default: ``SecAggPolicy()``, semi-malicious) is checked here,
    before anything is released: :class:`~fedprivacy.errors.PolicyViolation` if the config is outside it.
    With a row plan, at masking time, a row that fewer than max(``min_choosers``, the policy's
    ``min_choosers``) parties (itself included) really mask with it -- peers whose shares it holds --
    is uploaded as zeros (zero update, zero count): a server that cut the link between two choosers
    would otherwise see that row under the self mask alone. :attr:`rows_zeroed` counts them.
    """

    def __init__(
        self,
        config: SecAggConfig,
        party_id: int,
        *,
        random_bytes: RandomSource = system_random_bytes,
        row_plan: ClientRowPlan | None = None,
        identity: Identity | None = None,
        trust: TrustStore | None = None,
        policy: SecAggPolicy | None = None,
        min_choosers: int = 1,
        per_row: bool = False,
    ) -> None:
        if party_id not in config.party_ids:
            raise InvalidParameters(f"party {party_id} is not in this round's party set")
        per_row = per_row or row_plan is not None
        if row_plan is not None and row_plan.party_id != party_id:
            raise InvalidParameters("this row plan belongs to another party")
        if policy is None:
            policy = SecAggPolicy()
        if identity is not None:  # identities configured: malicious mode required (a downgrade is refused)
            if policy.adversary is Adversary.SEMI_MALICIOUS:
                policy = policy.replace(adversary=Adversary.MALICIOUS)
            if not config.malicious:
                raise PolicyViolation("adversary", "this client has an identity key and requires malicious mode")
        policy.check_secagg_config(config)
        if config.malicious:
            if identity is None or trust is None:
                raise InvalidParameters("a malicious-mode round needs this party's identity and the trust store")
            if identity.party_id != party_id or trust.get(party_id) != identity.verify_key:
                raise InvalidParameters("the trust store does not name this identity's key for this party")
        if row_plan is not None or not per_row:
            length = config.dim if row_plan is None else row_plan.input_length
            policy.check_allocation(length * dtype_of(config.modulus).itemsize, "the secure sum's input vector")
        self.policy = policy
        # A per-row sum set up before its plan exists (``per_row`` without ``row_plan``): config.dim is
        # the rows' block width and the plan comes with the input (:meth:`submit_input`).
        self.per_row = per_row
        self.min_choosers = max(int(min_choosers), policy.min_choosers)
        self.rows_zeroed = 0
        self.row_plan = row_plan
        self.config = config
        self.party_id = party_id
        self._ring = ring_order(config)  # public: derived from the config digest
        self.neighbours: frozenset[int] = neighbourhood(config, party_id, self._ring)
        self.stage = ClientStage.CREATED
        self.error: FedPrivacyError | None = None
        self._random_bytes = random_bytes
        self._channel_private: bytes | None = None
        self._mask_private: bytes | None = None
        self._own_public_keys: tuple[bytes, bytes] = (b"", b"")
        self._peer_keys: Mapping[int, tuple[bytes, bytes]] = {}  # neighbour -> (channel pk, mask pk)
        self._own_seed: bytes | None = None
        self._own_seed_share: tuple[int, ...] | None = None
        # Per-peer records are kept packed (numpy rows, fedprivacy/secagg/packed.py) once filled.
        self._held_shares: Mapping[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}  # owner -> (key, seed)
        self._pair_mask_keys: Mapping[int, bytes] = {}  # peer -> AES key of the pairwise mask
        self._channel_secrets: Mapping[int, bytes] = {}  # peer -> X25519 secret of the share channel
        self._input: np.ndarray | None = None
        self._answered: tuple[tuple[int, ...], tuple[int, ...]] | None = None
        self._response: UnmaskResponse | None = None
        self._released: dict[int, str] = {}  # peer -> "seed" | "key": never both
        self._identity = identity
        self._trust = trust
        self._transitions = MALICIOUS_CLIENT_TRANSITIONS if config.malicious else CLIENT_TRANSITIONS
        self._signed_set: tuple[int, ...] | None = None  # malicious mode: the one U3 this client signed
        self._quorum = config.quorum  # malicious full graph: consistency signers required (spec §14.4)
        # Two sums advertised with one signature (start_jointly, spec §14.8): "verifying" checks the
        # joint signatures, "covered" checks its peers' keys against what the verifying sum authenticated.
        self._joint: str | None = None
        self._joint_partner: SecAggConfig | None = None
        self._partner_keys: dict[int, tuple[bytes, bytes]] | None = None

    # -- public driving API -------------------------------------------------------------------

    @property
    def mask_peers(self) -> frozenset[int]:
        """The neighbours this client exchanged shares with (and masks with)."""
        return frozenset(self._held_shares)

    def start(self) -> list[Message]:
        """Round 0: generate the channel and mask key pairs and advertise their public halves."""
        self._transition(ClientEvent.START, local=True)
        channel_public, mask_public = self._generate_keys()
        signature = b""
        if self._identity is not None:
            signature = self._identity.sign(advertisement_statement(self.config, self.party_id, channel_public, mask_public))
        return [AdvertiseKeys(self.party_id, channel_public, mask_public, signature)]

    def _generate_keys(self) -> tuple[bytes, bytes]:
        self._channel_private, channel_public = generate_keypair(self._random_bytes)
        self._mask_private, mask_public = generate_keypair(self._random_bytes)
        self._own_public_keys = (channel_public, mask_public)
        return channel_public, mask_public

    @property
    def partner_keys(self) -> dict[int, tuple[bytes, bytes]] | None:
        """Jointly advertised, verifying side (spec §14.8): once its key broadcast is in, each listed
        party's keys of the partner (covered) sum, authenticated by that party's joint signature."""
        return None if self._joint != "verifying" or self._partner_keys is None else dict(self._partner_keys)

    @property
    def joint_advertisement(self) -> tuple[str, SecAggConfig, dict[int, tuple[bytes, bytes]] | None] | None:
        """Jointly advertised (:func:`start_jointly`): its role ("covered" or "verifying"), the partner
        sum's config and the partner keys it holds (None until they are in); None for a sum that
        advertised alone. A host restoring both sums checks with it that they still pair up."""
        if self._joint is None:
            return None
        assert self._joint_partner is not None
        keys = None if self._partner_keys is None else dict(self._partner_keys)
        return self._joint, self._joint_partner, keys

    def accept_partner_keys(self, keys: dict[int, tuple[bytes, bytes]]) -> None:
        """Jointly advertised, covered side: the peers' keys of this sum that the verifying partner sum
        authenticated (its :attr:`partner_keys`); given before this sum's (unsigned) key broadcast."""
        if self._joint != "covered" or self.stage is not ClientStage.KEYS_ADVERTISED or self._partner_keys is not None:
            raise LocalProtocolError("partner keys are given once, to a covered sum waiting for its key broadcast")
        self._partner_keys = dict(keys)

    def submit_input(self, vector: object, row_plan: ClientRowPlan | None = None) -> list[Message]:
        """Provide the input (integers in [0, modulus)); masked and sent once the shares are in.

        ``row_plan``: the plan of a per-row sum set up without one (``per_row=True``); its width must
        be ``config.dim`` (the block width the setup was bound to)."""
        self._next_stage(ClientEvent.SUBMIT_INPUT, local=True)  # checks legality, changes nothing
        if self._input is not None:
            raise LocalProtocolError("the input was already submitted")
        if row_plan is not None:
            if not self.per_row or self.row_plan is not None:
                raise LocalProtocolError("a row plan is given with the input only to a per-row sum set up without one")
            if row_plan.party_id != self.party_id or row_plan.width != self.config.dim:
                raise InvalidParameters("the row plan must be this party's, with the block width the sum was set up for")
        elif self.per_row and self.row_plan is None:
            raise LocalProtocolError("this per-row sum needs its row plan with the input")
        plan = self.row_plan if row_plan is None else row_plan
        length = None if plan is None else plan.input_length
        if length is not None:
            self.policy.check_allocation(length * dtype_of(self.config.modulus).itemsize, "the secure sum's input vector")
        self._input = coerce_input(vector, self.config, length)
        self.row_plan = plan
        if self.stage is ClientStage.AWAITING_INPUT:
            return self._guarded(self._send_masked_input)
        return []

    def receive(self, message: Message) -> list[Message]:
        """Consume one server message; returns the messages to send. Aborts on protocol violations."""
        event = _EVENT_OF.get(type(message))
        if event is None:
            return self._guarded(self._raise, RemoteProtocolError(f"a client does not accept {type(message).__name__}"))
        if getattr(message, "recipient", None) != self.party_id:
            return self._guarded(self._raise, RemoteProtocolError("message addressed to another party"))
        handlers: dict[ClientEvent, Callable[..., list[Message]]] = {
            ClientEvent.KEY_BROADCAST: self._on_key_broadcast,
            ClientEvent.ROUTED_SHARES: self._on_routed_shares,
            ClientEvent.UNMASK_REQUEST: self._on_unmask_request,
            ClientEvent.CONSISTENCY_REQUEST: self._on_consistency_request,
        }
        return self._guarded(self._dispatch, event, handlers[event], message)

    # -- persistence ------------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """Everything this client needs to go on later, as canonical bytes (secrets included).

        Keep it where the client's secrets may live (the node's own state), never send it. An aborted
        client has nothing worth keeping: snapshotting one is a :class:`LocalProtocolError`. A sum
        advertised jointly (:func:`start_jointly`) is written as type 19: its role, its partner's
        config and the partner keys it holds follow (spec §14.6, §14.8). No identity key or trust
        store is ever written: :meth:`restore` takes them from the host again.
        """
        if self.stage is ClientStage.ABORTED:
            raise LocalProtocolError("an aborted client has no state to keep")
        w = Writer(ProtocolCode.SECAGG, _STATE_TYPE if self._joint is None else _JOINT_STATE_TYPE)
        w.blob(self.config.encode()).u32(self.party_id).u8(_STAGE_CODES[self.stage])
        for secret in (self._channel_private, self._mask_private):
            _optional_fixed(w, secret, KEY_BYTES)
        own = self._own_public_keys if self._own_public_keys != (b"", b"") else None
        w.u8(own is not None)
        if own is not None:
            w.fixed(own[0], KEY_BYTES).fixed(own[1], KEY_BYTES)
        _write_key_pairs(w, self._peer_keys)
        _optional_fixed(w, self._own_seed, 32)
        w.u8(self._own_seed_share is not None)
        if self._own_seed_share is not None:
            _write_limbs(w, self._own_seed_share)
        w.u32(len(self._held_shares))
        for owner in sorted(self._held_shares):
            key_limbs, seed_limbs = self._held_shares[owner]
            _write_limbs(w.u32(owner), key_limbs)
            _write_limbs(w, seed_limbs)
        for table, size in ((self._pair_mask_keys, MASK_KEY_BYTES), (self._channel_secrets, KEY_BYTES)):
            w.u32(len(table))
            for peer in sorted(table):
                w.u32(peer).fixed(table[peer], size)
        self._write_answers(w)
        if self._joint is not None:
            assert self._joint_partner is not None
            w.u8(_JOINT_CODES[self._joint]).blob(self._joint_partner.encode())
            w.u8(self._partner_keys is not None)
            if self._partner_keys is not None:
                _write_key_pairs(w, self._partner_keys)
        return w.finish()

    def _write_answers(self, w: Writer) -> None:
        """The input, the answered split and response, the released kinds, the plan, the signed U3."""
        w.u8(self._input is not None)
        if self._input is not None:
            w.u32(self._input.shape[0])
            w.blob(np.ascontiguousarray(self._input, dtype=dtype_of(self.config.modulus).newbyteorder("<")).tobytes())
        w.u8(self._answered is not None)
        if self._answered is not None:
            w.id_list(self._answered[0]).id_list(self._answered[1])
        w.u8(self._response is not None)
        if self._response is not None:
            w.blob(self._response.to_bytes())
        w.u32(len(self._released))
        for peer in sorted(self._released):
            w.u32(peer).u8(_RELEASED_CODES[self._released[peer]])
        # 0: a dense sum, 1: its row plan follows, 2: a per-row sum whose plan has not come yet.
        w.u8(1 if self.row_plan is not None else 2 if self.per_row else 0)
        if self.row_plan is not None:
            w.blob(self.row_plan.encode())
        if self.config.malicious:  # (absent otherwise: earlier snapshots keep their bytes)
            w.u8(self._signed_set is not None)
            if self._signed_set is not None:
                w.id_list(self._signed_set)

    @classmethod
    def restore(
        cls,
        data: bytes | bytearray | memoryview,
        *,
        random_bytes: RandomSource = system_random_bytes,
        identity: Identity | None = None,
        trust: TrustStore | None = None,
        policy: SecAggPolicy | None = None,
        min_choosers: int = 1,
    ) -> SecAggClient:
        """The client a :meth:`snapshot` was taken of; :class:`DecodeError` (only) for bytes that are not
        one. The policy, ``min_choosers`` and, in malicious mode, the identity and trust store are the
        host's (they are not in the snapshot); the policy is checked again
        (:class:`~fedprivacy.errors.PolicyViolation` if it refuses the stored config), and a missing or
        mismatched identity is an :class:`InvalidParameters` (or :class:`LocalProtocolError` if the
        snapshot needs one). A jointly advertised sum comes back with its role, partner config and
        partner keys; that its partner is the matching sum is the host's to check (the submodel
        round does: :meth:`fedprivacy.submodel.client.SubmodelRoundClient.restore`)."""
        if identity is not None or trust is not None:
            # Checked before decoding so a caller's mistake is not reported as bad bytes.
            if identity is None or trust is None or trust.get(identity.party_id) != identity.verify_key:
                raise InvalidParameters("restore needs this party's identity and a trust store naming its key")
        try:
            return cls._restore(data, random_bytes, identity, trust, policy, min_choosers)
        except DecodeError:
            raise
        except (struct.error, ValueError, TypeError, OverflowError) as exc:  # InvalidParameters is a ValueError
            raise DecodeError(f"malformed client state: {type(exc).__name__}: {exc}") from None

    @classmethod
    def _restore(
        cls,
        data: bytes | bytearray | memoryview,
        random_bytes: RandomSource,
        identity: Identity | None,
        trust: TrustStore | None,
        policy: SecAggPolicy | None,
        min_choosers: int,
    ) -> SecAggClient:
        """Decode (:func:`_read_stored`), check the fields against each other, then build the client
        through its constructor (so the host's policy judges the config) and install the fields."""
        reader = Reader(data, ProtocolCode.SECAGG)
        kind = reader.u8()
        if kind not in (_STATE_TYPE, _JOINT_STATE_TYPE):
            raise DecodeError("not a secure-aggregation client state")
        stored = _read_stored(reader, joint=kind == _JOINT_STATE_TYPE)
        reader.done()
        stored.check()
        if stored.config.malicious and (identity is None or identity.party_id != stored.party_id):
            raise LocalProtocolError("restoring a malicious-mode client needs its identity and trust store")
        client = cls(stored.config, stored.party_id, random_bytes=random_bytes, row_plan=stored.row_plan,
                     identity=identity, trust=trust, policy=policy, min_choosers=min_choosers,
                     per_row=stored.plan_flag == 2)
        if not stored.parties_named() <= client.neighbours:
            raise DecodeError("client state names parties outside its neighbourhood")
        client._install(stored)
        return client

    def _install(self, stored: _StoredState) -> None:
        self.stage = stored.stage
        self._channel_private, self._mask_private = stored.channel_private, stored.mask_private
        self._own_public_keys = stored.own
        self._peer_keys = pack_byte_pairs(stored.peer_keys, KEY_BYTES)
        self._own_seed, self._own_seed_share = stored.own_seed, stored.own_seed_share
        self._held_shares = pack_limb_pairs(stored.held, SECRET_LIMBS)
        self._pair_mask_keys = pack_bytes(stored.pair_keys, MASK_KEY_BYTES)
        self._channel_secrets = pack_bytes(stored.channel_secrets, KEY_BYTES)
        self._input = stored.vector
        self._answered = stored.answered
        self._response = stored.response
        self._released = stored.released
        self._signed_set = stored.signed_set
        self._joint, self._joint_partner = stored.joint, stored.joint_partner
        self._partner_keys = stored.partner_keys

    # -- transitions ----------------------------------------------------------------------------

    def _next_stage(self, event: ClientEvent, *, local: bool) -> ClientStage:
        target = self._transitions.get((self.stage, event))
        if target is None:
            text = f"{event.value} is not allowed in stage {self.stage.value}"
            raise LocalProtocolError(text) if local else RemoteProtocolError(text)
        return target

    def _transition(self, event: ClientEvent, *, local: bool) -> None:
        self.stage = self._next_stage(event, local=local)

    def _dispatch(self, event: ClientEvent, handler: Callable[..., list[Message]], message: Message) -> list[Message]:
        target = self._next_stage(event, local=False)
        before = self.stage
        out = handler(message)
        if self.stage is before:  # a handler that completes the next step itself has moved on already
            self.stage = target
        return out

    def _guarded(self, function: Callable[..., list[Message]], *args: object) -> list[Message]:
        """Run a step; a remote violation or a bad ciphertext aborts the client for good."""
        if self.stage is ClientStage.ABORTED:
            raise LocalProtocolError("this client aborted") from self.error
        try:
            return function(*args)
        except (RemoteProtocolError, InvalidCiphertext, DecodeError) as exc:
            self._abort(exc)
            raise
        except InvalidParameters as exc:  # e.g. an invalid peer public key
            error = RemoteProtocolError(str(exc))
            self._abort(error)
            raise error from exc

    @staticmethod
    def _raise(error: FedPrivacyError) -> list[Message]:
        raise error

    def _abort(self, error: FedPrivacyError) -> None:
        self.stage = ClientStage.ABORTED
        self.error = error
        self._channel_private = self._mask_private = self._own_seed = self._own_seed_share = None
        self._held_shares = {}
        self._pair_mask_keys = {}
        self._channel_secrets = {}
        self._input = None

    # -- round 1: share keys ----------------------------------------------------------------------

    def _on_key_broadcast(self, message: KeyBroadcast) -> list[Message]:
        config = self.config
        peers = {p.party_id: (p.channel_public_key, p.mask_public_key) for p in message.peers}
        if len(peers) != len(message.peers):
            raise RemoteProtocolError("key broadcast lists a party twice")
        if not set(peers) <= self.neighbours:
            raise RemoteProtocolError("key broadcast names parties outside this client's neighbourhood")
        own = 1 if config.full_graph else 0  # the full graph shares to the owner too; SecAgg+ only to neighbours
        if len(peers) + own < config.threshold:
            raise RemoteProtocolError(f"only {len(peers) + own} share holders left, threshold is {config.threshold}")
        assert self._channel_private is not None and self._mask_private is not None
        if self._joint == "verifying":
            if not message.joint:
                raise RemoteProtocolError("a jointly advertised sum's key broadcast must be jointly signed")
            self._check_joint_advertisements(message)
        elif self._joint == "covered":
            if message.signed:
                raise RemoteProtocolError("a covered sum's key broadcast is unsigned (its keys are authenticated jointly)")
            self._check_partner_authenticated(message)
        else:
            if message.joint or message.signed != config.malicious:
                raise RemoteProtocolError("key broadcast signed in a round that is not malicious, or unsigned in one that is")
            if config.malicious:
                self._check_advertisements(message)
        # Compared canonically: X25519 ignores the top bit, so raw bytes would let one key pass twice.
        all_keys = [canonical_public_key(key) for pair in peers.values() for key in pair]
        all_keys += [canonical_public_key(key) for key in self._own_public_keys]
        if len(set(all_keys)) != len(all_keys):
            raise RemoteProtocolError("neighbours' public keys are not pairwise distinct")
        self._peer_keys = pack_byte_pairs(peers, KEY_BYTES)  # numpy rows, not a dict of bytes (packed.py)
        channel = KeyAgreement(self._channel_private)
        channel_secrets = {peer: channel.agree(keys[0]) for peer, keys in peers.items()}
        self._channel_secrets = pack_bytes(channel_secrets, KEY_BYTES)
        self._own_seed = self._random_bytes(32)
        holders = sorted([self.party_id, *peers] if config.full_graph else peers)
        secrets = np.concatenate([secret_to_limbs(self._mask_private), secret_to_limbs(self._own_seed)])
        shares = shamir.share(secrets, holders, config.threshold, self._random_bytes)
        limb_count = secrets.shape[0] // 2
        ciphertexts = []
        for row, holder in enumerate(holders):
            key_limbs, seed_limbs = shares[row, :limb_count], shares[row, limb_count:]
            if holder == self.party_id:
                self._own_seed_share = tuple(int(v) for v in seed_limbs)
                continue
            channel_key = share_channel_key(config, channel_secrets[holder], self.party_id, holder)
            ciphertexts.append((holder, encrypt_share(config, channel_key, self.party_id, holder, key_limbs, seed_limbs)))
        return [ShareKeys(self.party_id, tuple(ciphertexts))]

    def _check_advertisements(self, message: KeyBroadcast) -> None:
        assert self._trust is not None
        for peer in message.peers:
            if peer.party_id not in self._trust:
                raise RemoteProtocolError(f"party {peer.party_id} has no identity in the trust store")
            statement = advertisement_statement(self.config, peer.party_id, peer.channel_public_key, peer.mask_public_key)
            if not self._trust.verify(peer.party_id, peer.signature, statement):
                raise RemoteProtocolError(f"party {peer.party_id}'s key advertisement signature does not verify")

    def _check_joint_advertisements(self, message: KeyBroadcast) -> None:
        """Verifying side of a joint advertisement: one signature per peer over both sums' keys."""
        assert self._trust is not None and self._joint_partner is not None
        partner = {}
        for peer in message.peers:
            if peer.party_id not in self._trust:
                raise RemoteProtocolError(f"party {peer.party_id} has no identity in the trust store")
            covered_keys = (peer.partner_channel_public_key, peer.partner_mask_public_key)
            statement = joint_advertisement_statement(self._joint_partner, self.config, peer.party_id, covered_keys,
                                                      (peer.channel_public_key, peer.mask_public_key))
            if not self._trust.verify(peer.party_id, peer.signature, statement):
                raise RemoteProtocolError(f"party {peer.party_id}'s joint key advertisement signature does not verify")
            partner[peer.party_id] = covered_keys
        self._partner_keys = partner

    def _check_partner_authenticated(self, message: KeyBroadcast) -> None:
        """Covered side: every listed peer's keys are exactly those its joint signature covered."""
        if self._partner_keys is None:
            raise RemoteProtocolError("a covered sum's key broadcast before the partner sum authenticated the keys")
        for peer in message.peers:
            if self._partner_keys.get(peer.party_id) != (peer.channel_public_key, peer.mask_public_key):
                raise RemoteProtocolError(f"party {peer.party_id}'s keys are not the ones its joint advertisement signed")

    # -- round 2: masked input --------------------------------------------------------------------

    def _on_routed_shares(self, message: RoutedShares) -> list[Message]:
        config = self.config
        senders = [sender for sender, _ in message.ciphertexts]
        if len(set(senders)) != len(senders):
            raise RemoteProtocolError("routed shares list a sender twice")
        if not set(senders) <= set(self._peer_keys):
            raise RemoteProtocolError("routed shares come from parties whose keys this client never saw")
        own = 1 if config.full_graph else 0
        if len(senders) + own < config.threshold:
            raise RemoteProtocolError(f"only {len(senders) + own} share holders left, threshold is {config.threshold}")
        held = {}
        for sender, ciphertext in message.ciphertexts:
            channel_key = share_channel_key(config, self._channel_secrets[sender], sender, self.party_id)
            held[sender] = decrypt_share(config, channel_key, sender, self.party_id, ciphertext)
        assert self._mask_private is not None
        mask = KeyAgreement(self._mask_private)
        peers = sorted(held)
        self._pair_mask_keys = pack_bytes({
            peer: pair_mask_key(config, mask.agree(keys[1]), self.party_id, peer)
            for peer, keys in zip(peers, _records(self._peer_keys, peers))
        }, MASK_KEY_BYTES)
        self._channel_secrets = {}
        self._held_shares = pack_limb_pairs(held, SECRET_LIMBS)
        if self._input is not None:
            self.stage = ClientStage.AWAITING_INPUT
            return self._send_masked_input()
        return []

    def _send_masked_input(self) -> list[Message]:
        config = self.config
        assert self._input is not None and self._own_seed is not None and self._mask_private is not None
        masked = self._input
        self._input = None  # the plaintext input is not kept past masking
        self_key = self_mask_key(config, self._own_seed, self.party_id)
        if self.row_plan is not None:
            self._zero_thin_rows(masked)
            self.row_plan.mask(masked, self_key, self._pair_mask_keys, config.modulus)
            if self.per_row:  # a plan that came with the input goes with it (unmasking needs none)
                self.row_plan = None
        else:
            masks = [(self_key, False)]
            masks += [(key, self.party_id < peer) for peer, key in self._pair_mask_keys.items()]
            MaskExpander(config.modulus).apply_many(masked, masks)
        self._pair_mask_keys = {}
        masked.setflags(write=False)
        self.stage = ClientStage.INPUT_SENT
        return [MaskedInput(self.party_id, config.modulus, masked)]

    def _zero_thin_rows(self, vector: np.ndarray) -> None:
        """Zero the blocks of rows masked with fewer than ``min_choosers - 1`` peers it holds shares of."""
        plan = self.row_plan
        assert plan is not None
        if self.min_choosers <= 1:
            return
        keys = self._pair_mask_keys
        holders = keys.ids if isinstance(keys, PackedTable) else np.array(sorted(keys), dtype=np.int64)
        partners = plan.partner_counts(holders)
        thin = partners < self.min_choosers - 1
        self.rows_zeroed = int(thin.sum())
        if self.rows_zeroed:
            vector.reshape(-1, plan.width)[thin] = 0

    # -- round 3: unmasking -------------------------------------------------------------------------

    def _on_consistency_request(self, message: ConsistencyRequest) -> list[Message]:
        """Malicious mode: sign U3 once (an identical repeat gets the same signature, Ed25519 being
        deterministic); the split this client will answer is fixed from here on."""
        survivors = tuple(message.survivors)
        if self._signed_set is not None:
            if survivors != self._signed_set:
                raise RemoteProtocolError("a second consistency check with a different survivor set")
        else:
            survivor_set = set(survivors)
            if self.party_id not in survivor_set:
                raise RemoteProtocolError("the survivor set omits this client, whose masked input was sent")
            if not survivor_set <= set(self.config.party_ids):
                raise RemoteProtocolError("the survivor set names parties outside the round")
            if not (survivor_set & self.neighbours) <= set(self._held_shares):
                raise RemoteProtocolError("the survivor set names a neighbour that never shared keys with this client")
            if len(survivors) < self.config.threshold:
                raise RemoteProtocolError(f"only {len(survivors)} survivors, threshold is {self.config.threshold}")
            own = 1 if self.config.full_graph else 0
            alive = survivor_set & set(self._held_shares)
            if len(alive) + own < self.config.threshold:
                raise RemoteProtocolError(f"only {len(alive) + own} alive holders, threshold is {self.config.threshold}")
            self._signed_set = survivors
        assert self._identity is not None
        signature = self._identity.sign(consistency_statement(self.config, survivors))
        return [ConsistencyResponse(self.party_id, signature)]

    def _check_consistency_signatures(self, message: UnmaskRequest, alive: tuple[int, ...], dropped: tuple[int, ...]) -> None:
        """Malicious mode: the request is the split of the signed U3, and enough of every released
        peer's share holders signed that same U3 (spec §14.4)."""
        assert self._signed_set is not None and self._trust is not None
        if message.signatures is None:
            raise RemoteProtocolError("an unmasking request without the consistency signatures")
        survivors = set(self._signed_set)
        held = set(self._held_shares)
        if set(alive) != held & survivors or set(dropped) != held - survivors:
            raise RemoteProtocolError("the unmasking request is not the split of the survivor set this client signed")
        # Counted before any signature is verified: a request that cannot satisfy the condition costs
        # no verification. Full graph: a quorum (a majority over the corrupt parties the policy assumes,
        # checked at construction) of signers over U3; only one set can have one. SecAgg+ graph: for
        # every held peer, t signers among its share holders.
        signers = {signer for signer, _ in message.signatures}
        if self.config.full_graph:
            if len(signers) < self._quorum:
                raise RemoteProtocolError(
                    f"only {len(signers)} consistency signatures, the quorum is {self._quorum}"
                )
        else:
            threshold = self.config.threshold
            if len(signers) < threshold:
                raise RemoteProtocolError(f"only {len(signers)} consistency signatures, threshold is {threshold}")
            for peer in sorted(held):
                count = len(signers & neighbourhood(self.config, peer, self._ring))
                if count < threshold:
                    raise RemoteProtocolError(
                        f"only {count} of party {peer}'s share holders signed the survivor set, threshold is {threshold}"
                    )
        statement = consistency_statement(self.config, self._signed_set)
        for signer, signature in message.signatures:
            if signer not in self._trust:
                raise RemoteProtocolError(f"a consistency signature by party {signer}, which has no identity")
            if signer not in survivors:
                raise RemoteProtocolError(f"a consistency signature by party {signer}, outside the survivor set")
            if not self._trust.verify(signer, signature, statement):
                raise RemoteProtocolError(f"party {signer}'s consistency signature is not over the survivor set this client signed")

    def _on_unmask_request(self, message: UnmaskRequest) -> list[Message]:
        alive, dropped = tuple(message.alive_ids), tuple(message.dropped_ids)
        if self._answered is not None:
            if (alive, dropped) != self._answered:
                raise RemoteProtocolError("a second unmasking request with a different split")
            assert self._response is not None
            return [self._response]
        if self.config.malicious:
            self._check_consistency_signatures(message, alive, dropped)
        elif message.signatures is not None:
            raise RemoteProtocolError("consistency signatures in a round that is not malicious")
        alive_set, dropped_set = set(alive), set(dropped)
        if len(alive_set) != len(alive) or len(dropped_set) != len(dropped):
            raise RemoteProtocolError("unmasking request lists a party twice")
        if alive_set & dropped_set:
            raise RemoteProtocolError("unmasking request names parties both alive and dropped")
        if self.party_id in alive_set | dropped_set:
            raise RemoteProtocolError("unmasking request names the recipient itself")
        if not (alive_set | dropped_set) <= self.neighbours:
            raise RemoteProtocolError("unmasking request names parties outside this client's neighbourhood")
        if alive_set | dropped_set != set(self._held_shares):
            raise RemoteProtocolError("unmasking request contradicts the shares this client exchanged")
        own = 1 if self.config.full_graph else 0
        if len(alive_set) + own < self.config.threshold:
            raise RemoteProtocolError(f"only {len(alive_set) + own} alive holders, threshold is {self.config.threshold}")
        for peer in alive_set:
            if self._released.get(peer, "seed") != "seed":
                raise RemoteProtocolError(f"party {peer}'s key share was already released")
        for peer in dropped_set:
            if self._released.get(peer, "key") != "key":
                raise RemoteProtocolError(f"party {peer}'s seed share was already released")
        held = self._held_shares
        seed_shares = [(peer, shares[1]) for peer, shares in zip(alive, _records(held, alive))]
        if self.config.full_graph:
            assert self._own_seed_share is not None
            seed_shares.append((self.party_id, self._own_seed_share))
        key_shares = tuple((peer, shares[0]) for peer, shares in zip(dropped, _records(held, dropped)))
        for peer in alive:
            self._released[peer] = "seed"
        for peer in dropped:
            self._released[peer] = "key"
        self._answered = (alive, dropped)
        # kept packed (two arrays per list, the bytes it encodes to unchanged): at n = 1,000 a response
        # of Python tuples is ~300 kB a client, all alive at once at the end of an in-process round
        self._response = UnmaskResponse(self.party_id, _packed_shares(seed_shares), _packed_shares(key_shares))
        # Nothing secret is needed any more: only the answer is kept, for an identical repeat.
        self._own_seed = self._own_seed_share = self._channel_private = self._mask_private = None
        self._held_shares = {}
        return [self._response]



def _records(table: Mapping[int, Any], keys: Sequence[int]) -> list[Any]:
    """``[table[key] for key in keys]``, with one lookup for a packed table."""
    return table.select(keys) if isinstance(table, PackedTable) else [table[key] for key in keys]


def start_jointly(covered: SecAggClient, verifying: SecAggClient) -> tuple[list[Message], list[Message]]:
    """Start two malicious-mode sums of one party that advertise their keys in the same exchange,
    with **one** signature over both key pairs (spec §14.8): ``verifying`` (a full graph over the
    same parties, so every peer of ``covered`` is one of its peers) gets every peer's signature with
    both of that peer's key pairs and checks it once; ``covered`` then takes its peers' keys from
    what ``verifying`` authenticated (:meth:`SecAggClient.accept_partner_keys`) and checks no
    signature. Returns the two advertisements (each carries the joint signature).

    Refused (``LocalProtocolError``, nothing changed) unless both are malicious-mode clients of the same
    party and identity, not yet started, over the same parties, ``verifying`` on the full graph."""
    if covered is verifying or covered.party_id != verifying.party_id or covered._identity is None:
        raise LocalProtocolError("a joint advertisement needs two sums of one party with its identity")
    if verifying._identity is not covered._identity or not (covered.config.malicious and verifying.config.malicious):
        raise LocalProtocolError("a joint advertisement needs two malicious-mode sums with the same identity")
    if covered.config.party_ids != verifying.config.party_ids or not verifying.config.full_graph:
        raise LocalProtocolError("the verifying sum must be a full graph over the covered sum's parties")
    if covered.config.digest == verifying.config.digest:
        raise LocalProtocolError("a joint advertisement covers two different sums")
    for client in (covered, verifying):
        client._next_stage(ClientEvent.START, local=True)  # checks both before either moves
    identity = covered._identity
    covered._transition(ClientEvent.START, local=True)
    verifying._transition(ClientEvent.START, local=True)
    covered_keys, verifying_keys = covered._generate_keys(), verifying._generate_keys()
    signature = identity.sign(joint_advertisement_statement(covered.config, verifying.config, covered.party_id,
                                                            covered_keys, verifying_keys))
    covered._joint, covered._joint_partner = "covered", verifying.config
    verifying._joint, verifying._joint_partner = "verifying", covered.config
    return ([AdvertiseKeys(covered.party_id, *covered_keys, signature)],
            [AdvertiseKeys(verifying.party_id, *verifying_keys, signature)])


def _optional_fixed(writer: Writer, value: bytes | None, size: int) -> None:
    writer.u8(value is not None)
    if value is not None:
        writer.fixed(value, size)


def _read_flag(reader: Reader) -> bool:
    flag = reader.u8()
    if flag > 1:
        raise DecodeError("flag byte must be 0 or 1")
    return flag == 1


def _read_optional_fixed(reader: Reader, size: int) -> bytes | None:
    return reader.fixed(size) if _read_flag(reader) else None


def _write_limbs(writer: Writer, limbs: tuple[int, ...]) -> None:
    for limb in limbs:
        writer.u64(int(limb))


def _read_limbs(reader: Reader) -> tuple[int, ...]:
    limbs = tuple(reader.u64() for _ in range(SECRET_LIMBS))
    if any(limb >= P61 for limb in limbs):
        raise DecodeError("share limbs out of range")
    return limbs


def _write_key_pairs(writer: Writer, pairs: Mapping[int, tuple[bytes, bytes]]) -> None:
    writer.u32(len(pairs))
    for peer in sorted(pairs):
        channel, mask = pairs[peer]
        writer.u32(peer).fixed(channel, KEY_BYTES).fixed(mask, KEY_BYTES)


def _read_key_pairs(reader: Reader) -> dict[int, tuple[bytes, bytes]]:
    pairs = {}
    count = reader.count(MAX_CLIENTS, 4 + 2 * KEY_BYTES)
    for _ in range(count):
        peer = reader.u32()  # (read the id first: a subscript target is evaluated after its value)
        pairs[peer] = (reader.fixed(KEY_BYTES), reader.fixed(KEY_BYTES))
    _check_ids(pairs, count)
    return pairs


def _read_keyed(reader: Reader, size: int) -> dict[int, bytes]:
    table = {}
    count = reader.count(MAX_CLIENTS, 4 + size)
    for _ in range(count):
        peer = reader.u32()
        table[peer] = reader.fixed(size)
    _check_ids(table, count)
    return table


def _check_ids(table: Mapping[int, object], count: int) -> None:
    if len(table) != count:  # a party listed twice: not a snapshot this class writes
        raise DecodeError("client state lists a party twice")
    check_strictly_increasing(list(table))


@dataclass
class _StoredState:
    """The fields of a client snapshot, decoded but not yet checked against a policy (spec §9, §14.6)."""

    config: SecAggConfig
    party_id: int
    stage: ClientStage
    channel_private: bytes | None = None
    mask_private: bytes | None = None
    own: tuple[bytes, bytes] = (b"", b"")
    peer_keys: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)
    own_seed: bytes | None = None
    own_seed_share: tuple[int, ...] | None = None
    held: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    pair_keys: dict[int, bytes] = field(default_factory=dict)
    channel_secrets: dict[int, bytes] = field(default_factory=dict)
    vector: np.ndarray | None = None
    answered: tuple[tuple[int, ...], tuple[int, ...]] | None = None
    response: UnmaskResponse | None = None
    released: dict[int, str] = field(default_factory=dict)
    plan_flag: int = 0
    row_plan: ClientRowPlan | None = None
    signed_set: tuple[int, ...] | None = None
    joint: str | None = None
    joint_partner: SecAggConfig | None = None
    partner_keys: dict[int, tuple[bytes, bytes]] | None = None

    def parties_named(self) -> set[int]:
        return set(self.peer_keys) | set(self.held) | set(self.pair_keys) | set(self.channel_secrets) | set(self.released)

    def check(self) -> None:
        """The fields agree with each other and with the stage (anything else: :class:`DecodeError`)."""
        config, stage = self.config, self.stage
        if (self.signed_set is not None) != (stage is ClientStage.SIGNED or (stage is ClientStage.COMPLETED and config.malicious)):
            raise DecodeError("the signed survivor set does not match the stage")
        if self.joint is None:
            return
        partner = self.joint_partner
        assert partner is not None
        full = config if self.joint == "verifying" else partner
        if (not (config.malicious and partner.malicious) or partner.party_ids != config.party_ids
                or partner.digest == config.digest or not full.full_graph):
            raise DecodeError("a joint advertisement's partner is not a sum it can be paired with")
        if stage is ClientStage.CREATED:
            raise DecodeError("a jointly advertised sum has started")
        if self.partner_keys is not None:
            if self.joint == "verifying" and stage is ClientStage.KEYS_ADVERTISED:
                raise DecodeError("a verifying sum holds partner keys only after its key broadcast")
            if not set(self.partner_keys) <= set(config.party_ids) - {self.party_id}:
                raise DecodeError("partner keys of parties outside the round")


def _read_stored(reader: Reader, *, joint: bool) -> _StoredState:
    """Read a snapshot's fields after its type byte (the format: spec §9 and §14.6)."""
    config = SecAggConfig.decode(bytes(reader.blob(_MAX_BLOB)))
    party_id = reader.u32()
    stage = _STAGE_OF_CODE.get(reader.u8())
    if stage is None or stage is ClientStage.ABORTED:
        raise DecodeError("unknown or aborted client stage")
    stored = _StoredState(config, party_id, stage)
    stored.channel_private = _read_optional_fixed(reader, KEY_BYTES)
    stored.mask_private = _read_optional_fixed(reader, KEY_BYTES)
    stored.own = (reader.fixed(KEY_BYTES), reader.fixed(KEY_BYTES)) if _read_flag(reader) else (b"", b"")
    stored.peer_keys = _read_key_pairs(reader)
    stored.own_seed = _read_optional_fixed(reader, 32)
    stored.own_seed_share = _read_limbs(reader) if _read_flag(reader) else None
    held_count = reader.count(MAX_CLIENTS, 4 + 16 * SECRET_LIMBS)
    for _ in range(held_count):
        owner = reader.u32()
        stored.held[owner] = (_read_limbs(reader), _read_limbs(reader))
    _check_ids(stored.held, held_count)
    stored.pair_keys = _read_keyed(reader, MASK_KEY_BYTES)
    stored.channel_secrets = _read_keyed(reader, KEY_BYTES)
    _read_answers(reader, stored)
    if joint:
        role = _JOINT_OF_CODE.get(reader.u8())
        if role is None:
            raise DecodeError("unknown joint advertisement role")
        stored.joint, stored.joint_partner = role, SecAggConfig.decode(bytes(reader.blob(_MAX_BLOB)))
        stored.partner_keys = _read_key_pairs(reader) if _read_flag(reader) else None
    return stored


def _read_answers(reader: Reader, stored: _StoredState) -> None:
    """The input, the answered split and response, the released kinds, the plan, the signed U3."""
    config = stored.config
    if _read_flag(reader):
        length = reader.u32()
        raw = bytes(reader.blob(_MAX_BLOB))
        dtype = dtype_of(config.modulus).newbyteorder("<")
        if len(raw) != length * dtype.itemsize:
            raise DecodeError("stored input has the wrong length")
        stored.vector = np.frombuffer(raw, dtype=dtype).astype(dtype_of(config.modulus))
    stored.answered = (reader.id_list(MAX_CLIENTS), reader.id_list(MAX_CLIENTS)) if _read_flag(reader) else None
    response = decode_message(reader.blob(_MAX_BLOB)) if _read_flag(reader) else None
    if response is not None and not isinstance(response, UnmaskResponse):
        raise DecodeError("stored answer is not an unmasking response")
    stored.response = response
    last = 0
    for _ in range(reader.count(MAX_CLIENTS, 5)):
        peer, code = reader.u32(), reader.u8()
        if peer <= last or code not in _RELEASED_OF_CODE:
            raise DecodeError("released-share record out of order or unknown")
        last = peer
        stored.released[peer] = _RELEASED_OF_CODE[code]
    stored.plan_flag = reader.u8()
    if stored.plan_flag > 2:
        raise DecodeError("unknown row plan flag")
    stored.row_plan = ClientRowPlan.decode(bytes(reader.blob(_MAX_BLOB))) if stored.plan_flag == 1 else None
    stored.signed_set = reader.id_list(MAX_CLIENTS) if config.malicious and _read_flag(reader) else None


def _packed_shares(pairs: list[tuple[int, tuple[int, ...]]] | tuple[tuple[int, tuple[int, ...]], ...]) -> PackedShares:
    """(owner, limbs) pairs as a :class:`PackedShares`, sorted by owner (read-only arrays)."""
    ordered = sorted(pairs)
    owners = np.array([owner for owner, _ in ordered], dtype=np.int64)
    limbs = np.array([limbs for _, limbs in ordered], dtype=np.uint64).reshape(len(ordered), SECRET_LIMBS)
    owners.setflags(write=False)
    limbs.setflags(write=False)
    return PackedShares(owners, limbs)
