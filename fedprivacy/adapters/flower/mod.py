"""``secaggplus_mod``: the client side of fedprivacy's SecAgg+ as a Flower mod.

A drop-in for Flower's ``flwr.client.mod.secaggplus_mod``: put it in ``ClientApp(mods=[...])`` in
its place and keep the rest of the app. It handles the train messages of
:class:`fedprivacy.adapters.flower.SecAggPlusWorkflow` and passes every other message on untouched.

Each train message carries one canonical fedprivacy message (bytes in a ``ConfigRecord`` under
:data:`~fedprivacy.adapters.flower.constants.RECORD_KEY_CONFIGS`); the mod decodes it, feeds it to
the node's :class:`~fedprivacy.secagg.SecAggClient` and replies with the client's answer:

* ``setup``: the round's ``SecAggConfig``, the node's party id and the quantizer's parameters in; the
  node's two X25519 public keys out;
* ``share_keys``: its neighbours' public keys in; one encrypted share pair per neighbour out;
* ``collect_masked_vectors``: the shares addressed to it (and the usual fit instructions) in; the mod
  lets the app train (``call_next``), quantizes the returned parameters with
  :class:`~fedprivacy.secagg.Quantizer` -- clipped to ``[-clipping_range, clipping_range]``, times
  the weight ``num_examples`` (at most ``max_weight``), the weight appended -- masks them and sends
  only the masked vector; the reply's parameter arrays are emptied, ``num_examples`` and the
  metrics still go to the strategy, as with Flower's mod;
* ``unmask``: the split of its neighbours into alive and dropped in; the matching shares out. The
  client refuses a split that overlaps, names a party it never exchanged shares with, or contradicts
  one it already answered: it never releases both secrets of one peer.

**Malicious mode.** A node whose node config names an identity and a trust store
(``fedprivacy-identity-key``, ``fedprivacy-trust-store``; :mod:`fedprivacy.adapters.identity`)
requires it (``protocols/secagg/spec.md`` §14): it answers ``identify`` with its identity's party id,
refuses a ``setup`` that names it otherwise or is not malicious, signs its keys, checks its
neighbours' signatures, signs the survivor set in ``consistency_check`` and releases shares in
``unmask`` only with enough valid signatures over that same set. A node without an identity refuses
``identify``.

**The node's policy.** At ``setup`` the node checks the round's config against its own
:class:`~fedprivacy.policy.ClientPolicy`, read from the *node* config only (``fedprivacy-adversary``,
``fedprivacy-corrupt-fraction``, ``fedprivacy-min-parties``, ``fedprivacy-max-allocation-bytes``; see
``protocols/secagg/spec.md``, "Client policy"): too few parties, a threshold below the bound for the
policy's adversary, or a vector above the byte budget is refused before any key leaves the node.

**Distributed DP (optional).** When the setup record carries ``ddp_l2_clip``,
``ddp_noise_multiplier`` and ``ddp_sensitivity`` (the workflow's ``ddp``), the mod clips the whole
weighted vector (weight ``num_examples / max_weight``) in L2 and adds exact discrete Gaussian noise
sized for the threshold's survivors (less the colluders of the node's ``ClientPolicy.ddp``, never
below its minimum multiplier) before masking (``protocols/ddp/spec.md``). A node whose policy
requires DDP refuses a round without it. The mod keeps no ledger: the node's update epsilon is
that of the settings, composed over the rounds it joins.

**Where the client lives between two messages.** A SuperNode runs its ClientApp in a fresh process
for every message (and a simulation in whichever worker is free), so nothing kept in this module or
in the mod object survives from one stage to the next: only ``context.state`` does. The client is
therefore kept there, as its canonical :meth:`~fedprivacy.secagg.SecAggClient.snapshot` (bytes in a
``ConfigRecord``), together with the quantizer's parameters. That record holds the client's private
keys, seed and the shares it holds for its neighbours: ``context.state`` never leaves the node (the
SuperNode keeps it; it is not sent to the SuperLink), which is also where Flower's own mod keeps its
keys. It is wiped as soon as the client aborts.

**Failures.** The mod never raises for a bad message: it checks the message up front and answers a
malformed one, one for another round, a stage out of order or a protocol violation (the client then
aborts and forgets its secrets) with ``Message(Error(MOD_FAILED_PRECONDITION, reason), reply_to=msg)``,
which the workflow counts as a dropout. An error reply of the app itself is passed through.
"""

from __future__ import annotations

import hashlib
from logging import WARNING

import numpy as np
from flwr.app import ConfigRecord, Context, Error, Message, MessageType, RecordDict
from flwr.app.typing import ConfigRecordValues
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import parameters_to_ndarrays
from flwr.common.constant import ErrorCode
from flwr.common.logger import log
from flwr.compat.common import recorddict_compat as compat

from ...ddp import DDPSettings, NoisePlan, check_overflow, client_variance, privatize, to_modulus
from ...errors import DecodeError, FedPrivacyError, InvalidParameters, LocalProtocolError, PolicyViolation
from ...policy import ClientPolicy
from ...secagg import Quantizer, SecAggClient, SecAggConfig
from ...secagg.messages import (
    ConsistencyRequest,
    KeyBroadcast,
    Message as SecAggMessage,
    RoutedShares,
    UnmaskRequest,
    decode_message,
)
from ...secagg.stages import ClientStage

# The order of the server's requests, and which one each client stage waits for (or answered last).
_STEP_OF = {KeyBroadcast: 1, RoutedShares: 2, ConsistencyRequest: 3, UnmaskRequest: 4}
_STEP_OF_STAGE = {
    ClientStage.KEYS_ADVERTISED: 1,
    ClientStage.SHARES_SENT: 2,
    ClientStage.AWAITING_INPUT: 3,
    ClientStage.INPUT_SENT: 3,
    ClientStage.SIGNED: 4,
    ClientStage.COMPLETED: 4,
}
from ..identity import identity_from_config
from ._submodel_state import policy_from_config, record_bytes, record_float, record_int
from .constants import RECORD_KEY_CONFIGS, RECORD_KEY_STATE, Key, Stage

__all__ = ["secaggplus_mod"]

_EXPECTED = {Stage.SHARE_KEYS: KeyBroadcast, Stage.COLLECT_MASKED_VECTORS: RoutedShares,
             Stage.CONSISTENCY_CHECK: ConsistencyRequest, Stage.UNMASK: UnmaskRequest}
_SETUP_TYPES = {
    Key.SESSION: bytes,
    Key.CONFIG: bytes,
    Key.PARTY_ID: int,
    Key.CLIPPING_RANGE: float,
    Key.MAX_WEIGHT: float,
    Key.SCALE: float,
}


class _Refused(Exception):
    """Why the mod answers with an error (never leaves this module)."""


def secaggplus_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
    """Handle one message of fedprivacy's SecAgg+ (train messages); pass every other message on.

    Parameters
    ----------
    msg : Message
        The message from the ServerApp.
    ctxt : Context
        The node's context; ``ctxt.state`` keeps the node's client between stages.
    call_next : ClientAppCallable
        The rest of the mod chain and the app (called once per round, in ``collect_masked_vectors``).

    Returns
    -------
    Message
        The reply: the client's protocol message, or an ``Error`` reply.
    """
    if msg.metadata.message_type != MessageType.TRAIN:
        return call_next(msg, ctxt)
    try:
        stage, record = _read_request(msg)
        repeat = _repeated_reply(ctxt, stage, record)
        if repeat is not None:  # the same request again (a transport retry): the same answer, nothing redone
            return Message(_content(repeat), reply_to=msg)
        if stage == Stage.IDENTIFY:
            return _identify(msg, ctxt)
        if stage == Stage.SETUP:
            return _setup(msg, ctxt, record)
        return _step(msg, ctxt, call_next, stage, record)
    except _Refused as exc:
        return _error(msg, str(exc))


# -- the incoming message, checked before anything happens -------------------------------------------


def _read_request(msg: Message) -> tuple[str, ConfigRecord]:
    if not msg.has_content():
        raise _Refused("the message has no content")
    record = msg.content.config_records.get(RECORD_KEY_CONFIGS)
    if record is None:
        raise _Refused(f"the train message has no '{RECORD_KEY_CONFIGS}' record (is the server running fedprivacy's workflow?)")
    stage = record.get(Key.STAGE)
    if not isinstance(stage, str) or stage not in Stage.every():
        raise _Refused(f"unknown stage {stage!r}")
    if stage == Stage.IDENTIFY:
        return stage, record
    required = _SETUP_TYPES if stage == Stage.SETUP else {Key.SESSION: bytes, Key.MESSAGE: bytes}
    for key, kind in required.items():
        value = record.get(key)
        if type(value) is not kind:  # bool is an int, and must not pass for one
            raise _Refused(f"stage {stage}: '{key}' must be {kind.__name__}, got {type(value).__name__}")
    return stage, record


def _error(msg: Message, reason: str) -> Message:
    return Message(Error(code=ErrorCode.MOD_FAILED_PRECONDITION, reason=f"fedprivacy secaggplus_mod: {reason}"), reply_to=msg)


def _reply_record(stage: str, session: bytes, message: SecAggMessage) -> ConfigRecord:
    return ConfigRecord({Key.STAGE: stage, Key.SESSION: session, Key.MESSAGE: message.to_bytes()})


def _content(record: ConfigRecord) -> RecordDict:
    return RecordDict({RECORD_KEY_CONFIGS: record})


def _fingerprint(record: ConfigRecord) -> bytes:
    return hashlib.sha256(repr(sorted(record.items())).encode()).digest()


def _repeated_reply(ctxt: Context, stage: str, record: ConfigRecord) -> ConfigRecord | None:
    """The stored answer if this exact request was the last one answered (setup, share_keys, unmask).

    A repeated ``collect_masked_vectors`` is not replayed (its answer carries the app's training
    result); it meets a client that has moved on, which refuses it.
    """
    stored = ctxt.state.config_records.get(RECORD_KEY_STATE)
    if stage == Stage.IDENTIFY or stored is None or stored.get(Key.LAST_REQUEST) != _fingerprint(record):
        return None
    reply = stored.get(Key.LAST_REPLY)
    return _reply_record_from(stage, record_bytes(record[Key.SESSION]), reply) if isinstance(reply, bytes) else None


def _reply_record_from(stage: str, session: bytes, data: bytes) -> ConfigRecord:
    return ConfigRecord({Key.STAGE: stage, Key.SESSION: session, Key.MESSAGE: data})


# -- the node's state --------------------------------------------------------------------------------


def _ddp_from(record: ConfigRecord) -> DDPSettings | None:
    """The round's distributed-DP settings from a setup (or state) record: all three keys or none."""
    keys = (Key.DDP_L2_CLIP, Key.DDP_NOISE_MULTIPLIER, Key.DDP_SENSITIVITY)
    present = [k in record for k in keys]
    if not any(present):
        return None
    if not all(present) or type(record[Key.DDP_SENSITIVITY]) is not int:  # bool is not an int here
        raise _Refused("setup: distributed DP needs ddp_l2_clip, ddp_noise_multiplier (floats), ddp_sensitivity (int)")
    try:
        return DDPSettings(record_float(record[Key.DDP_L2_CLIP]), record_float(record[Key.DDP_NOISE_MULTIPLIER]),
                           record_int(record[Key.DDP_SENSITIVITY]))
    except (InvalidParameters, TypeError, ValueError) as exc:
        raise _Refused(f"setup: invalid distributed-DP settings: {exc}") from None


def _ddp_noise(config: SecAggConfig, ddp: DDPSettings, policy: ClientPolicy) -> NoisePlan:
    """The node's noise: sized for the threshold's survivors less the colluders its policy assumes,
    never below its own minimum multiplier; settings whose noisy sum could wrap are refused."""
    floor = max(1, config.threshold - policy.ddp.colluders)
    variance = client_variance(ddp, floor, policy.ddp.minimum_noise_multiplier)
    check_overflow(config.modulus, config.clients, ddp.sensitivity, variance, config.dim)
    return NoisePlan(variance, variance)


def _save(ctxt: Context, client: SecAggClient, quantizer: Quantizer, request: ConfigRecord | None = None,
          reply: bytes | None = None, ddp: DDPSettings | None = None, max_weight: float | None = None) -> None:
    state: dict[str, ConfigRecordValues] = {
        Key.CLIENT: client.snapshot(),
        Key.SESSION: client.config.digest,
        Key.CLIPPING_RANGE: float(quantizer.clip),
        Key.MAX_WEIGHT: float(quantizer.max_weight if max_weight is None else max_weight),
        Key.SCALE: float(quantizer.scale or 0.0),
    }
    if ddp is not None:
        state.update({Key.DDP_L2_CLIP: float(ddp.l2_clip), Key.DDP_NOISE_MULTIPLIER: float(ddp.noise_multiplier),
                      Key.DDP_SENSITIVITY: int(ddp.sensitivity)})
    if request is not None and reply is not None:
        state[Key.LAST_REQUEST] = _fingerprint(request)
        state[Key.LAST_REPLY] = reply
    ctxt.state.config_records[RECORD_KEY_STATE] = ConfigRecord(state)


def _forget(ctxt: Context) -> None:
    if RECORD_KEY_STATE in ctxt.state.config_records:
        del ctxt.state.config_records[RECORD_KEY_STATE]


def _load(ctxt: Context, session: bytes) -> tuple[SecAggClient, Quantizer, DDPSettings | None, float]:
    stored = ctxt.state.config_records.get(RECORD_KEY_STATE)
    if stored is None:
        raise _Refused("no secure-aggregation round in progress on this node (setup missing)")
    if stored.get(Key.SESSION) != session:
        raise _Refused("the message belongs to another round than the one in progress")
    try:
        identity, trust = identity_from_config(ctxt.node_config)
        client = SecAggClient.restore(record_bytes(stored[Key.CLIENT]), policy=policy_from_config(ctxt.node_config),
                                      identity=identity, trust=trust)
        config = client.config
        ddp = _ddp_from(stored)
        max_weight = record_float(stored[Key.MAX_WEIGHT])
        quantizer = Quantizer(
            config.modulus, record_float(stored[Key.CLIPPING_RANGE]), config.clients, 1.0 if ddp else max_weight,
            record_float(stored[Key.SCALE]),
        )
    except (DecodeError, InvalidParameters, PolicyViolation, LocalProtocolError, KeyError, TypeError, _Refused) as exc:
        _forget(ctxt)
        raise _Refused(f"the stored round state is unusable: {exc}") from None
    return client, quantizer, ddp, max_weight


# -- stages ------------------------------------------------------------------------------------------


def _identify(msg: Message, ctxt: Context) -> Message:
    """Malicious mode: the party id of this node's identity (public; the server maps the node to it)."""
    try:
        identity, _ = identity_from_config(ctxt.node_config)
    except InvalidParameters as exc:
        raise _Refused(f"identify: {exc}") from None
    if identity is None:
        raise _Refused("identify: this node has no identity (set fedprivacy-identity-key and fedprivacy-trust-store "
                       "in its node config)")
    return Message(_content(ConfigRecord({Key.STAGE: Stage.IDENTIFY, Key.PARTY_ID: identity.party_id})), reply_to=msg)


def _setup(msg: Message, ctxt: Context, record: ConfigRecord) -> Message:
    _forget(ctxt)  # a new round replaces whatever an unfinished one left behind
    try:
        config = SecAggConfig.decode(record_bytes(record[Key.CONFIG]))
    except DecodeError as exc:
        raise _Refused(f"setup: invalid config: {exc}") from None
    if config.digest != record[Key.SESSION]:
        raise _Refused("setup: the session does not match the config")
    party_id = record_int(record[Key.PARTY_ID])
    ddp = _ddp_from(record)
    max_weight = record_float(record[Key.MAX_WEIGHT])
    try:
        policy = policy_from_config(ctxt.node_config)  # the node's policy
        if ddp is None and policy.ddp.required:
            raise PolicyViolation("ddp", "this node requires distributed DP for its update; the round has none")
        quantizer = Quantizer(
            config.modulus, record_float(record[Key.CLIPPING_RANGE]), config.clients, 1.0 if ddp else max_weight,
            record_float(record[Key.SCALE]),
        )
        if ddp is not None:
            if record_float(record[Key.SCALE]) != ddp.scale:
                raise InvalidParameters("the quantizer's scale must be the distributed-DP scale")
            _ddp_noise(config, ddp, policy)  # refuse settings that could wrap before any key leaves
        identity, trust = identity_from_config(ctxt.node_config)  # with both: malicious mode required
        if identity is not None and identity.party_id != party_id:
            raise InvalidParameters(f"the server names this node party {party_id}, its identity is party "
                                    f"{identity.party_id}")
        client = SecAggClient(config, party_id, policy=policy, identity=identity, trust=trust)
    except (InvalidParameters, PolicyViolation) as exc:
        raise _Refused(f"setup: {exc}") from None
    reply = client.start()[0].to_bytes()
    _save(ctxt, client, quantizer, record, reply, ddp, max_weight)
    return Message(_content(_reply_record_from(Stage.SETUP, config.digest, reply)), reply_to=msg)


def _step(msg: Message, ctxt: Context, call_next: ClientAppCallable, stage: str, record: ConfigRecord) -> Message:
    session = record_bytes(record[Key.SESSION])
    client, quantizer, ddp, max_weight = _load(ctxt, session)
    try:
        incoming = decode_message(record_bytes(record[Key.MESSAGE]))
    except DecodeError as exc:
        raise _Refused(f"stage {stage}: {exc}") from None
    if not isinstance(incoming, _EXPECTED[stage]):
        raise _Refused(f"stage {stage}: expected {_EXPECTED[stage].__name__}, got {type(incoming).__name__}")
    if _STEP_OF[type(incoming)] < _STEP_OF_STAGE.get(client.stage, 0):
        # A re-delivered request of a stage this node already answered: refuse it, keep the round.
        raise _Refused(f"stage {stage}: already answered")
    try:
        sent = client.receive(incoming)  # checks the stage order and every protocol rule; aborts on a breach
    except FedPrivacyError as exc:
        _forget(ctxt)
        raise _Refused(f"stage {stage}: {type(exc).__name__}: {exc}") from None
    if stage != Stage.COLLECT_MASKED_VECTORS:
        reply = sent[0].to_bytes()
        _save(ctxt, client, quantizer, record, reply, ddp, max_weight)
        return Message(_content(_reply_record_from(stage, session, reply)), reply_to=msg)
    try:
        out_msg = call_next(msg, ctxt)  # train
    except BaseException:
        _forget(ctxt)  # the app failed: this node sends no input this round, and forgets its secrets
        raise
    if out_msg.has_error():
        _forget(ctxt)
        return out_msg
    content = out_msg.content
    try:
        fitres = compat.recorddict_to_fitres(content, keep_input=True)
        arrays = parameters_to_ndarrays(fitres.parameters)
        flat = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays]) if arrays else np.zeros(0)
        if flat.shape[0] != client.config.dim - 1:
            raise InvalidParameters(
                f"the app returned {flat.shape[0]} parameters, the round aggregates {client.config.dim - 1}"
            )
        weight = float(fitres.num_examples)
        if weight > max_weight:  # Flower's mod warns and risks overflow; this one caps the weight
            log(WARNING, "secaggplus_mod: num_examples %d above max_weight %g: weighted as %g",
                fitres.num_examples, max_weight, max_weight)
            weight = max_weight
        if ddp is None:
            vector = quantizer.encode(flat, weight)
        else:  # clip the whole weighted vector, add the node's exact noise, then mask
            noise = _ddp_noise(client.config, ddp, policy_from_config(ctxt.node_config))
            signed = privatize(flat[None, :], np.array([weight / max_weight]), 1, quantizer.clip, ddp, noise)
            vector = to_modulus(signed, client.config.modulus).reshape(-1)
        sent = client.submit_input(vector)
    except (FedPrivacyError, KeyError, TypeError, ValueError) as exc:
        _forget(ctxt)
        raise _Refused(f"stage {stage}: {type(exc).__name__}: {exc}") from None
    for array_record in content.array_records.values():
        array_record.clear()  # the plaintext parameters never leave the node
    content.config_records[RECORD_KEY_CONFIGS] = _reply_record(stage, session, sent[0])
    _save(ctxt, client, quantizer, ddp=ddp, max_weight=max_weight)
    return Message(content, reply_to=msg)

