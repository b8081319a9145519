"""Secure federated submodel learning on Flower 1.42: a ServerApp workflow and a ClientApp handler.

The round is the one of :mod:`fedprivacy.submodel` (``protocols/submodel/spec.md``): private set union
of the clients' real index sets, double randomized response under each client's budget, per-row
secure aggregation of the rows each client chose. This module only moves its messages over Flower's
Message API:

* :class:`SecureSubmodelWorkflow` (ServerApp side) hosts a
  :class:`~fedprivacy.submodel.server.SubmodelRoundServer` over your
  :class:`~fedprivacy.submodel.interfaces.GlobalModel` and runs each stage of the round as one
  exchange over the ``Grid`` (``push_messages``, then ``pull_messages`` until every reply is in or
  the stage's timeout passed -- ``send_and_receive``'s loop, with each reply matched to the message
  it answers);
* :class:`SecureSubmodelClient` (ClientApp side) hosts a
  :class:`~fedprivacy.submodel.client.SubmodelRoundClient` over your
  :class:`~fedprivacy.submodel.interfaces.LocalTrainer`; register it with
  ``app.train(SUBMODEL_ACTION)(handler)`` or build the app with :func:`submodel_client_app`.

On the wire every Flower message of the round has the type ``"train.fedprivacy_submodel"`` and one
``ConfigRecord`` under ``"fedprivacy.submodel"``: ``round`` (int), ``party`` (the node's party id) and
``messages`` (a list of canonical fedprivacy messages as bytes, in order). Each node in the round is
party ``i + 1`` where ``i`` is its position in the sorted list of node ids; the server announces it in
every message, and accepts a reply only from the node the message went to, with that party id in it,
and only fedprivacy messages whose sender is that party.

Malicious mode (``protocols/secagg/spec.md`` §14): with a trust store (the workflow's ``trust_store``
argument, or the path in the run config key ``fedprivacy-trust-store``) the round's secure sums run
signed, with the consistency check. Party ids are then the deployment's, not positions: before each
round the server asks every node for the party id its identity file names (a message with an
``"fedprivacy.identify"`` record; nodes naming an id outside the trust store, or one another node also
names, are left out of the round, with a warning), and a node refuses a round message that calls it
by another party id than its identity's.

What the server (and anyone reading the SuperLink's messages) learns is what it learns in process:
``protocols/submodel/spec.md``, "What the server learns"; over Flower also which node is which party,
and message sizes and timing.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from logging import DEBUG, ERROR, INFO, WARNING

from flwr.app import ConfigRecord, Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import Mod
from flwr.common.constant import ErrorCode
from flwr.common.logger import log
from flwr.serverapp import Grid

from ...errors import DecodeError, FedPrivacyError, InvalidParameters, RoundAborted
from ...hazmat.prg import RandomSource, system_random_bytes
from ...secagg import Adversary
from ...secagg.identity import TrustStore
from ...submodel.client import DeviceState, SubmodelRoundClient, lower_cap
from ...submodel.interfaces import GlobalModel, LocalTrainer
from ...submodel.messages import RoundStart, SubmodelMessage, decode_submodel_message
from ...submodel.server import RoundResult, SubmodelOutbound, SubmodelRoundServer
from ...submodel.settings import RoundSettings
from ...submodel.stages import RoundClientStage, RoundServerStage
from ..identity import TRUST_STORE_KEY, identity_from_config, load_trust_store
from ..storage import ClientStore
from ._submodel_state import (
    ContextStore,
    CountedRandomness,
    RoundSlot,
    clear_round,
    epsilon_cap_from_config,
    load_round,
    policy_from_config,
    rr_parameters_from_config,
    save_round,
    state_directory,
)

__all__ = [
    "SUBMODEL_ACTION",
    "SUBMODEL_MESSAGE_TYPE",
    "SUBMODEL_RECORD",
    "IDENTIFY_RECORD",
    "SecureSubmodelWorkflow",
    "SecureSubmodelClient",
    "SubmodelRoundFailed",
    "submodel_client_app",
]

SUBMODEL_ACTION = "fedprivacy_submodel"
SUBMODEL_MESSAGE_TYPE = f"train.{SUBMODEL_ACTION}"
SUBMODEL_RECORD = "fedprivacy.submodel"
IDENTIFY_RECORD = "fedprivacy.identify"  # malicious mode: "which party does your identity name?"
_MAX_PARTY = (1 << 32) - 1
_TERMINAL = (RoundClientStage.COMPLETED, RoundClientStage.SAT_OUT, RoundClientStage.ABORTED)


class SubmodelRoundFailed(RoundAborted):
    """The secure submodel round could not complete on Flower (too few nodes, or too few survivors at
    some stage). The model is untouched. A :class:`~fedprivacy.errors.RoundAborted`, so either can be
    caught."""


def _record(round_index: int, party: int, messages: Iterable[bytes]) -> RecordDict:
    return RecordDict({SUBMODEL_RECORD: ConfigRecord({"round": round_index, "party": party, "messages": list(messages)})})


def _read_record(content: RecordDict) -> tuple[int, int, list[bytes]]:
    """(round, party, messages) of a round message; anything else is a ValueError."""
    record = content.config_records.get(SUBMODEL_RECORD)
    if record is None:
        raise ValueError(f"no {SUBMODEL_RECORD!r} config record")
    round_index, party, messages = record.get("round"), record.get("party"), record.get("messages")
    if not isinstance(round_index, int) or isinstance(round_index, bool) or round_index < 0:
        raise ValueError("round must be an integer >= 0")
    if not isinstance(party, int) or isinstance(party, bool) or not 1 <= party <= _MAX_PARTY:
        raise ValueError("party must be an integer in [1, 2^32 - 1]")
    payloads: list[bytes] = [m for m in messages if isinstance(m, bytes)] if isinstance(messages, list) else []
    if not isinstance(messages, list) or len(payloads) != len(messages):
        raise ValueError("messages must be a list of bytes")
    return round_index, party, payloads


# -- ServerApp side -------------------------------------------------------------------------------


class SecureSubmodelWorkflow:
    """Runs secure submodel rounds over a Flower ``Grid``; call it from ``@app.main()``.

    Parameters
    ----------
    model : GlobalModel
        Your model: serves rows and dense parameters, applies the averaged updates (in place).
    settings : RoundSettings
        The round's public settings (universe, caps, clip, ``min_choosers``, the secure sums' dropout
        and collusion tolerance, modulus).
    num_rounds : int | None (default: None)
        Rounds per call; None reads ``num-server-rounds`` from the run config (default 1).
    first_round : int (default: 1)
        Index of the first round (round indices are recorded in the clients' ledgers, and a client
        joins at most ``max_psu_attempts`` PSU attempts per round index over its lifetime: a new run
        over the same node state must continue the numbering).
    min_nodes : int (default: 2)
        Wait until this many nodes are connected before each round.
    node_wait_timeout : float (default: 60.0)
        Seconds to wait for ``min_nodes``; then the round fails.
    timeout : float | None (default: None)
        Seconds each stage waits for replies (``send_and_receive``'s timeout; also the messages' TTL).
        A node that has not answered by then has dropped out of the round. None waits for every reply.
    on_round : Callable[[int, RoundResult], None] | None
        Called after each completed round (evaluation, checkpoints, logging).
    trust_store : TrustStore | str | os.PathLike | None (default: None)
        The deployment's trust store (party id -> Ed25519 key) or its JSON file: the rounds run in
        malicious mode (``settings.adversary`` becomes ``MALICIOUS``) over the party ids the nodes'
        identities name. ``None`` reads the path from the run config key ``fedprivacy-trust-store``
        when :meth:`__call__` runs, if set.
    union_estimate : int | None (default: None)
        The server's estimate of the first round's union size (e.g. the last run's). Each completed
        round's union size replaces it (:attr:`union_estimate`), and each round's first PSU table is
        sized at ``PSU_HEADROOM`` (1.25) times it, never above n x ``max_set_size`` (with None: that
        ceiling); a union that outgrows the table reruns the PSU (``protocols/submodel/spec.md``,
        "First PSU table").

    Every connected node takes part in every round (sample nodes by running one workflow per cohort
    with :meth:`run_round` and ``node_ids``). Replies that carry an error, arrive after the timeout,
    come from another node or repeat an earlier reply are dropped; the round goes on while the secure
    sums' thresholds hold and otherwise raises :class:`SubmodelRoundFailed` after logging the reason.
    Raises
    ------
    SubmodelRoundFailed
        When a round cannot complete (the model is then untouched).

    Examples
    --------
    ::

        app = ServerApp()

        @app.main()
        def main(grid: Grid, context: Context) -> None:
            model = MyModel()
            SecureSubmodelWorkflow(model, RoundSettings(universe=100_000), min_nodes=10)(grid, context)
    """

    def __init__(
        self,
        model: GlobalModel,
        settings: RoundSettings,
        *,
        num_rounds: int | None = None,
        first_round: int = 1,
        min_nodes: int = 2,
        node_wait_timeout: float = 60.0,
        timeout: float | None = None,
        on_round: Callable[[int, RoundResult], None] | None = None,
        trust_store: TrustStore | str | os.PathLike[str] | None = None,
        union_estimate: int | None = None,
    ) -> None:
        if not isinstance(settings, RoundSettings):
            raise InvalidParameters("settings must be a RoundSettings")
        if num_rounds is not None and (not isinstance(num_rounds, int) or num_rounds < 0):
            raise InvalidParameters("num_rounds must be an integer >= 0 (or None)")
        if not isinstance(first_round, int) or first_round < 0:
            raise InvalidParameters("first_round must be an integer >= 0")
        if not isinstance(min_nodes, int) or min_nodes < 2:
            raise InvalidParameters("min_nodes must be an integer >= 2 (a round needs two parties)")
        if timeout is not None and not timeout > 0:
            raise InvalidParameters("timeout must be positive (or None)")
        if not node_wait_timeout >= 0:
            raise InvalidParameters("node_wait_timeout must be >= 0")
        if union_estimate is not None and (isinstance(union_estimate, bool) or not isinstance(union_estimate, int)
                                           or union_estimate < 0):
            raise InvalidParameters("union_estimate must be an integer >= 0 (or None)")
        self.model = model
        self.settings = settings
        self.num_rounds = num_rounds
        self.first_round = first_round
        self.min_nodes = min_nodes
        self.node_wait_timeout = node_wait_timeout
        self.timeout = timeout
        self.on_round = on_round
        self.results: list[RoundResult] = []
        self.parties: dict[int, int] = {}  # node id -> party id, of the last round started
        self.exchanges: list[int] = []  # exchanges (messages to the nodes, each answered) of each completed round
        self.union_estimate = union_estimate  # the last completed round's union size: sizes the next first PSU table
        if trust_store is not None and not isinstance(trust_store, TrustStore):
            trust_store = load_trust_store(trust_store)
        self.trust_store: TrustStore | None = trust_store

    def __call__(self, grid: Grid, context: Context) -> None:
        if self.trust_store is None and TRUST_STORE_KEY in context.run_config:
            self.trust_store = load_trust_store(str(context.run_config[TRUST_STORE_KEY]))
        rounds = self.num_rounds
        if rounds is None:
            rounds = int(context.run_config.get("num-server-rounds", 1))
        for round_index in range(self.first_round, self.first_round + rounds):
            self.run_round(grid, round_index)

    def run_round(self, grid: Grid, round_index: int, node_ids: Sequence[int] | None = None) -> RoundResult:
        """One round with ``node_ids`` (default: every connected node, after waiting for ``min_nodes``)."""
        nodes = sorted({int(n) for n in node_ids}) if node_ids is not None else self.wait_for_nodes(grid)
        if len(nodes) < 2 or len(nodes) > _MAX_PARTY:
            raise self._fail(round_index, RoundAborted("start", f"{len(nodes)} nodes; a round needs 2 to 2^32 - 1"))
        trust, settings = self.trust_store, self.settings
        exchanges = 0  # the identify exchange (malicious mode) counts too
        if trust is None:
            parties = {node: index for index, node in enumerate(nodes, start=1)}
        else:
            if settings.adversary is not Adversary.MALICIOUS:
                settings = dataclasses.replace(settings, adversary=Adversary.MALICIOUS)
            parties = self._identify(grid, round_index, nodes, trust)
            exchanges += 1
            if len(parties) < 2:
                raise self._fail(round_index, RoundAborted("start", f"{len(parties)} nodes with a usable identity"))
            nodes = sorted(parties)
        node_of = {party: node for node, party in parties.items()}
        self.parties = parties
        started = time.perf_counter()
        log(INFO, "[submodel round %d] %d nodes, universe %d", round_index, len(nodes), self.settings.universe)
        try:
            server = SubmodelRoundServer(self.model, settings, list(node_of), round_index, trust=trust,
                                         union_estimate=self.union_estimate)
            outbound: Sequence[SubmodelOutbound] = server.start()
        except RoundAborted as exc:
            raise self._fail(round_index, exc) from exc
        while server.stage is not RoundServerStage.COMPLETED:
            label = server.stage.value if server.phase_stage is None else f"{server.stage.value}:{server.phase_stage.value}"
            by_party: dict[int, list[bytes]] = defaultdict(list)
            for item in outbound:
                by_party[item.recipient].append(item.message.to_bytes())
            if by_party:
                exchanges += 1
                self._exchange(grid, server, round_index, label, by_party, node_of)
            try:
                outbound = server.close_stage()
            except RoundAborted as exc:
                raise self._fail(round_index, exc) from exc
        result = server.result
        assert result is not None
        log(
            INFO,
            "[submodel round %d] completed in %.2f s: union %d, %d of %d nodes in the sums, %d rows updated, "
            "exchanges_per_round %d, PSU attempts %d (first table bound %d)",
            round_index, time.perf_counter() - started, result.union.shape[0], len(result.contributors), len(nodes),
            result.rows_updated, exchanges, result.psu_attempts, result.psu_bounds[0],
        )
        self.exchanges.append(exchanges)
        self.union_estimate = int(result.union.shape[0])
        self.results.append(result)
        if self.on_round is not None:
            self.on_round(round_index, result)
        return result

    def wait_for_nodes(self, grid: Grid) -> list[int]:
        """The connected node ids (sorted), once at least ``min_nodes`` are there; raises
        :class:`SubmodelRoundFailed` after ``node_wait_timeout`` seconds without them."""
        deadline = time.monotonic() + self.node_wait_timeout
        while True:
            nodes = sorted(int(n) for n in grid.get_node_ids())
            if len(nodes) >= self.min_nodes:
                return nodes
            if time.monotonic() >= deadline:
                log(ERROR, "[submodel] %d nodes connected after %g s, %d needed", len(nodes), self.node_wait_timeout,
                    self.min_nodes)
                raise SubmodelRoundFailed("start", f"{len(nodes)} nodes connected, {self.min_nodes} needed")
            time.sleep(0.2)

    def _exchange(
        self,
        grid: Grid,
        server: SubmodelRoundServer,
        round_index: int,
        label: str,
        by_party: dict[int, list[bytes]],
        node_of: dict[int, int],
    ) -> None:
        """One stage: a message to each recipient, its reply (if any) into the server."""
        sent: dict[str, tuple[int, int]] = {}  # message id -> (node, party)
        messages = []
        for party, payloads in sorted(by_party.items()):
            messages.append(Message(_record(round_index, party, payloads), node_of[party], SUBMODEL_MESSAGE_TYPE,
                                    ttl=self.timeout, group_id=str(round_index)))
        pushed = {message_id for message_id in grid.push_messages(messages) if message_id}
        for message, party in zip(messages, sorted(by_party)):
            if message.metadata.message_id in pushed:  # the grid sets the id on the message it pushed
                sent[message.metadata.message_id] = (message.metadata.dst_node_id, party)
            else:
                log(WARNING, "[submodel round %d] %s: the message to node %d could not be pushed",
                    round_index, label, message.metadata.dst_node_id)
        replies = self._collect(grid, set(sent))
        answered: set[str] = set()
        failures = 0
        for reply in replies:
            meta = reply.metadata
            target = sent.get(meta.reply_to_message_id)
            if target is None or meta.reply_to_message_id in answered or meta.src_node_id != target[0]:
                log(DEBUG, "[submodel round %d] %s: ignored a reply from node %d (unknown, repeated or misrouted)",
                    round_index, label, meta.src_node_id)
                continue
            answered.add(meta.reply_to_message_id)
            node, party = target
            if reply.has_error():
                failures += 1
                log(WARNING, "[submodel round %d] %s: node %d (party %d) replied with an error: %s",
                    round_index, label, node, party, reply.error.reason)
                continue
            try:
                reply_round, reply_party, payloads = _read_record(reply.content)
            except ValueError as exc:
                failures += 1
                log(WARNING, "[submodel round %d] %s: node %d sent a malformed reply: %s", round_index, label, node, exc)
                continue
            if reply_round != round_index or reply_party != party or meta.message_type != SUBMODEL_MESSAGE_TYPE:
                failures += 1
                log(WARNING, "[submodel round %d] %s: node %d answered for another round or party", round_index, label, node)
                continue
            for data in payloads:
                try:
                    decoded = decode_submodel_message(data)
                except DecodeError as exc:
                    log(WARNING, "[submodel round %d] %s: node %d sent undecodable bytes: %s", round_index, label, node, exc)
                    continue
                if getattr(decoded, "sender", None) != party:  # only what the node says as itself
                    log(WARNING, "[submodel round %d] %s: node %d sent a message as another party", round_index, label, node)
                    continue
                server.receive(decoded)
        missing = len(sent) - len(answered)
        log(INFO, "[submodel round %d] %s: %d nodes, %d replies, %d errors, %d missing",
            round_index, label, len(sent), len(answered) - failures, failures, missing)

    def _identify(self, grid: Grid, round_index: int, nodes: list[int], trust: TrustStore) -> dict[int, int]:
        """Malicious mode: node -> the party id its identity names, for the nodes whose id is in the
        trust store and named by no other node."""
        messages = [Message(RecordDict({IDENTIFY_RECORD: ConfigRecord({"round": round_index})}), node,
                            SUBMODEL_MESSAGE_TYPE, ttl=self.timeout, group_id=str(round_index)) for node in nodes]
        pushed = {message_id for message_id in grid.push_messages(messages) if message_id}
        sent = {m.metadata.message_id: m.metadata.dst_node_id for m in messages if m.metadata.message_id in pushed}
        claimed: dict[int, int] = {}
        for reply in self._collect(grid, set(sent)):
            meta = reply.metadata
            node = sent.get(meta.reply_to_message_id)
            if node is None or meta.src_node_id != node or node in claimed:
                continue
            if reply.has_error():
                log(WARNING, "[submodel round %d] identify: node %d has no usable identity: %s", round_index, node,
                    reply.error.reason)
                continue
            record = reply.content.config_records.get(IDENTIFY_RECORD) if reply.has_content() else None
            party = None if record is None else record.get("party")
            if type(party) is not int or not 1 <= party <= _MAX_PARTY:  # not a bool
                log(WARNING, "[submodel round %d] identify: node %d sent a malformed reply", round_index, node)
                continue
            if party not in trust:
                log(WARNING, "[submodel round %d] identify: node %d names party %d, which the trust store does not "
                    "know: left out", round_index, node, party)
                continue
            claimed[node] = party
        owners: dict[int, list[int]] = defaultdict(list)
        for node, party in claimed.items():
            owners[party].append(node)
        for party, named_by in owners.items():
            if len(named_by) > 1:
                log(WARNING, "[submodel round %d] identify: nodes %s all name party %d: all left out", round_index,
                    sorted(named_by), party)
        return {node: party for node, party in claimed.items() if len(owners[party]) == 1}

    def _collect(self, grid: Grid, message_ids: set[str]) -> list[Message]:
        """Pull replies until all arrived or the stage's timeout passed (as ``send_and_receive``)."""
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        pending, replies = set(message_ids), []
        while pending:
            got = list(grid.pull_messages(pending))
            replies.extend(got)
            pending -= {m.metadata.reply_to_message_id for m in got}
            if not pending or (deadline is not None and time.monotonic() >= deadline):
                break
            time.sleep(0.05)
        return replies

    def _fail(self, round_index: int, error: RoundAborted) -> SubmodelRoundFailed:
        log(ERROR, "[submodel round %d] failed: %s", round_index, error)
        return SubmodelRoundFailed(error.stage, error.detail)


# -- ClientApp side -------------------------------------------------------------------------------


class SecureSubmodelClient:
    """The ClientApp handler of the secure submodel round (one per ClientApp).

    Parameters
    ----------
    client_fn : Callable[[Context], LocalTrainer]
        Builds your trainer for this node (its data: e.g. from ``context.node_config["partition-id"]``).
        Its ``client_id`` is the node's stable identity in its own ledger (``client-<id>``); it never
        leaves the node -- the server knows the node as a party id.
    state_dir : str | os.PathLike | None (default: None)
        A base directory for the nodes' ledgers and memos (``<state_dir>/partition-<partition-id>``),
        used when neither the node config nor the run config sets ``fedprivacy-state-dir``.
    random_source : Callable[[Context, int, int], RandomSource] | None
        Tests only: ``random_source(context, party, round_index)`` gives the round's randomness, a
        deterministic stream (e.g. :class:`~fedprivacy.hazmat.prg.DeterministicRandomness`): it is called
        again for each message of the round and moved past the bytes the round already drew (their
        count is kept with the round's snapshot). Default: the OS CSPRNG.

    Why a handler and not a mod: in Flower 1.42 a ClientApp routes each message to the function
    registered for its type before any mod runs, and a mod can only wrap that function's reply. The
    secure round is not a transformation of one training reply: it is 7 exchanges per round (10 in
    malicious mode: the identify exchange and each secure sum's consistency check), and
    training happens in the middle of it, when the row download arrives. So it is a function
    registered under its own action (``app.train(SUBMODEL_ACTION)``), and your other functions and
    mods (``app.evaluate()``, ``message_size_mod``, ...) sit next to it or around it as usual.

    Where state lives (see :mod:`fedprivacy.adapters.flower._submodel_state`): the ledger and memo in
    the node's state directory (``fedprivacy-state-dir`` in the node config, or a base directory in
    the run config), which survives restarts, else in ``context.state``, which survives rounds of the
    run but not a restart of the node. The round in progress -- the protocol client with its keys --
    lives in ``context.state`` from the round's first message to its last and is never written to a
    file: Flower 1.42 runs every message in a fresh ClientApp object (a new process per message in
    deployment, a fresh copy in a Ray actor in simulation), so an in-memory map on this
    object would not outlive a message; ``context.state`` is the per-(run, node) memory Flower keeps
    between them (in the SuperNode's memory in deployment, in the simulation's memory otherwise).
    A node restarted mid-round has lost it: it answers the next message of that round with an error
    and the server counts it as a dropout.

    The node's :class:`~fedprivacy.policy.ClientPolicy` comes from its node config only
    (``fedprivacy-min-choosers``, ``fedprivacy-max-psu-attempts``, ``fedprivacy-allow-insecure``, ...:
    :data:`~fedprivacy.adapters.flower._submodel_state.POLICY_KEYS`). Randomized-response settings:
    ``fedprivacy-cpp`` (preset 1..5), or ``fedprivacy-p1``..``fedprivacy-p4``, or
    ``fedprivacy-epsilon`` [+ ``fedprivacy-epsilon-1``]; in the node config they are the node's own
    (default CPP2), in the run config only a suggestion taken if at least as private.
    ``fedprivacy-epsilon-cap`` caps the ledger's budget (the node's, lowered by the run config's if
    smaller; a lower cap than the ledger's is recorded in it). PSU attempts per round index are counted
    in the ledger, so a server that restarts the round (a fresh attempt-0 ``RoundStart``) beyond
    ``max_psu_attempts`` is refused.

    What the node reveals: see the module docstring. Every failure (a bad server message, a training
    error, a missing round) is answered with a Flower error reply and the node is out of the round.
    """

    def __init__(
        self,
        client_fn: Callable[[Context], LocalTrainer],
        *,
        state_dir: str | os.PathLike[str] | None = None,
        random_source: Callable[[Context, int, int], RandomSource] | None = None,
    ) -> None:
        if not callable(client_fn):
            raise InvalidParameters("client_fn must be a callable taking the Context")
        self.client_fn = client_fn
        self.state_dir = state_dir
        self.random_source = random_source

    def register(self, app: ClientApp, *, mods: list[Mod] | None = None) -> ClientApp:
        """Register this handler on ``app`` for the round's messages; returns ``app``."""
        app.train(SUBMODEL_ACTION, mods=mods)(self)
        return app

    def __call__(self, message: Message, context: Context) -> Message:
        if message.metadata.message_type != SUBMODEL_MESSAGE_TYPE:
            return _error_reply(message, ErrorCode.MOD_FAILED_PRECONDITION, "not a secure submodel message")
        if message.has_content() and IDENTIFY_RECORD in message.content.config_records:
            return self._identify(message, context)
        try:
            round_index, party, payloads = _read_record(message.content)
            decoded = [decode_submodel_message(data) for data in payloads]
        except (ValueError, DecodeError) as exc:
            clear_round(context.state)
            return _error_reply(message, ErrorCode.MOD_FAILED_PRECONDITION, f"malformed round message: {exc}")
        try:
            state = self._client_state(context, party)
            slot = self._slot(context, round_index, party, decoded, state)
        except _NotInRound as exc:  # the round in progress (if any) is not this message's: keep it
            log(WARNING, "secure submodel round %d: %s", round_index, exc)
            return _error_reply(message, ErrorCode.CLIENT_APP_RAISED_EXCEPTION, str(exc))
        except Exception as exc:  # noqa: BLE001 -- a node answers with an Error reply, it never raises into Flower
            clear_round(context.state)
            log(ERROR, "secure submodel round %d: cannot take part: %r", round_index, exc)
            return _error_reply(message, ErrorCode.CLIENT_APP_RAISED_EXCEPTION, f"{type(exc).__name__}: {exc}")
        try:
            replies = [reply for item in decoded for reply in slot.client.receive(item)]
        except FedPrivacyError as exc:
            clear_round(context.state)
            log(WARNING, "secure submodel round %d: this node is out of the round: %s", round_index, exc)
            return _error_reply(message, ErrorCode.CLIENT_APP_RAISED_EXCEPTION, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 -- the trainer's own failure: the node is out of the round
            clear_round(context.state)
            log(ERROR, "secure submodel round %d: training or storage failed: %r", round_index, exc, exc_info=True)
            return _error_reply(message, ErrorCode.CLIENT_APP_RAISED_EXCEPTION, f"{type(exc).__name__}: {exc}")
        if slot.client.stage in _TERMINAL:
            clear_round(context.state)
        else:
            save_round(context.state, slot)
        return Message(_record(round_index, party, [reply.to_bytes() for reply in replies]), reply_to=message)

    @staticmethod
    def _identify(message: Message, context: Context) -> Message:
        """Malicious mode: the party id this node's identity names (public)."""
        try:
            identity, _ = identity_from_config(context.node_config)
        except InvalidParameters as exc:
            return _error_reply(message, ErrorCode.CLIENT_APP_RAISED_EXCEPTION, f"identify: {exc}")
        if identity is None:
            return _error_reply(message, ErrorCode.CLIENT_APP_RAISED_EXCEPTION, "identify: this node has no identity "
                                "(set fedprivacy-identity-key and fedprivacy-trust-store in its node config)")
        return Message(RecordDict({IDENTIFY_RECORD: ConfigRecord({"party": identity.party_id})}), reply_to=message)

    def _slot(self, context: Context, round_index: int, party: int, decoded: list[SubmodelMessage],
              state: DeviceState) -> RoundSlot:
        first = decoded[0] if decoded else None
        seeded = None if self.random_source is None else self.random_source
        if isinstance(first, RoundStart) and first.psu_params.attempt == 0:  # a new round
            clear_round(context.state)
            randomness = None if seeded is None else CountedRandomness(seeded(context, party, round_index))
            source = system_random_bytes if randomness is None else randomness
            return RoundSlot(context.run_id, round_index, party, SubmodelRoundClient(state, party, random_bytes=source),
                             randomness)
        again = None if seeded is None else (lambda: seeded(context, party, round_index))
        # A snapshot that does not restore (tampered, stale, refused by the policy) raises: out of the round.
        slot = load_round(context.state, state, run_id=context.run_id, round_index=round_index, party=party,
                          random_source=again)
        if slot is None:
            raise _NotInRound(f"no round {round_index} in progress on this node as party {party} "
                              "(a node restarted mid-round has dropped out of it)")
        return slot

    def _client_state(self, context: Context, party: int) -> DeviceState:
        trainer = self.client_fn(context)
        policy = policy_from_config(context.node_config)  # the node's own, never the run's
        params = rr_parameters_from_config(context.node_config, context.run_config, policy)
        cap = epsilon_cap_from_config(context.node_config, context.run_config, policy)
        client_id = f"client-{trainer.client_id}"
        directory = state_directory(context.node_config, context.run_config, self.state_dir)
        store: ClientStore | ContextStore = (ContextStore(context.state, client_id) if directory is None
                                             else ClientStore(directory, client_id))
        ledger = store.open_ledger(cap)
        lower_cap(ledger, store, cap)  # a cap only goes down, and the ledger says when
        memo = store.load_memo(params, ledger)
        identity, trust = identity_from_config(context.node_config)  # malicious mode when set (spec §14)
        if identity is not None and identity.party_id != party:
            raise InvalidParameters(f"the server calls this node party {party}, its identity is party {identity.party_id}")
        return DeviceState(trainer, params, ledger, memo, store, policy, identity, trust)


class _NotInRound(Exception):
    """A round message for a round this node is not in (restarted, or a stale message)."""


def _error_reply(message: Message, code: int, reason: str) -> Message:
    return Message(Error(code=code, reason=reason), reply_to=message)


def submodel_client_app(
    client_fn: Callable[[Context], LocalTrainer],
    *,
    mods: list[Mod] | None = None,
    state_dir: str | os.PathLike[str] | None = None,
) -> ClientApp:
    """A ClientApp that answers the secure submodel round (add your own ``@app.evaluate()`` etc.).

    ``mods`` wrap the round's handler (Flower's function-specific mods); ``state_dir`` as in
    :class:`SecureSubmodelClient`."""
    app = ClientApp()
    SecureSubmodelClient(client_fn, state_dir=state_dir).register(app, mods=mods)
    return app
