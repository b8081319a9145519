"""``SecAggPlusWorkflow``: the server side of fedprivacy's SecAgg+ as a Flower fit workflow.

A drop-in for Flower's ``flwr.server.workflow.SecAggPlusWorkflow`` (same constructor arguments, same
place: ``DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(...))``), paired with
:func:`fedprivacy.adapters.flower.secaggplus_mod` on the clients. It runs fedprivacy's sans-I/O
:class:`~fedprivacy.secagg.SecAggServer` over ``grid.send_and_receive``: four stages, each one train
message per node carrying one canonical fedprivacy message (bytes in a ``ConfigRecord``), the fit
instructions riding along in the third as with Flower's workflow.

**What the server sees.** Threat model and leakage: ``protocols/secagg/spec.md`` §1 and §8 (the
summed vector is the nodes' weighted parameters with the sum of the weights appended). Over Flower
the server also gets every node's ``num_examples`` and fit metrics (handed to the strategy as with
Flower's workflow), and message sizes and timing. Compared with Flower's SecAgg+ the masks are AES-CTR keystreams under HKDF keys
(not 32-bit-seeded Mersenne Twister), shares are AES-GCM encrypted and bound to session and parties,
clients refuse an unmasking request that would reveal both secrets of one peer, and a node that drops
before uploading its masked input at *any* stage (also at setup or share_keys) is handled.

**Malicious mode** (``protocols/secagg/spec.md`` §14). With a trust store -- the ``trust_store``
argument, or the path in the run config key ``fedprivacy-trust-store`` -- the round runs the active-
adversary variant, for nodes whose node config names their identity and the same trust store (see
:func:`~fedprivacy.adapters.flower.secaggplus_mod`): an ``identify`` stage first asks every sampled
node for the party id of its identity (a node id is Flower's, a party id the deployment's; nodes that
name an id outside the trust store, or the same id as another node, are left out, with a warning),
the config is built over those party ids, advertisements are signed and checked, and a
``consistency_check`` stage before ``unmask`` has every survivor sign the survivor set. The nodes
check the signatures themselves; the server's checks only keep one bad node from making the others
abort.

**Dropouts and bad replies.** A reply that is missing (``timeout`` expired), an ``Error`` reply, one
from a node not asked in this stage, one for another stage or round, a duplicate, or one that does not
decode to the expected message of that node is ignored: the node counts as dropped from that stage on.
The round completes while at least ``t`` share holders of every remaining node survive each stage;
otherwise the workflow logs the reason at ERROR level and halts, leaving the global parameters
unchanged (as Flower's workflow does); :attr:`SecAggPlusWorkflow.last_round` tells what happened.

**Hand-off to the strategy.** As Flower's workflow does, the weighted mean becomes the parameters of
every accepted node's ``FitRes``, and ``strategy.aggregate_fit`` is called with those results and the
failures; what it returns becomes the new global parameters.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from logging import DEBUG, ERROR, INFO, WARNING
from typing import cast

import numpy as np
from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.app.typing import ConfigRecordValues
from flwr.common import FitRes, log, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat
from flwr.server.client_proxy import ClientProxy
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key as WorkflowKey
from flwr.serverapp import Grid

from ...ddp.params import DDPSettings
from ...errors import DecodeError, FedPrivacyError, InvalidParameters, RoundAborted
from ...hazmat.field import Modulus
from ...secagg import Adversary, Quantizer, SecAggConfig, SecAggServer, check_graph_parameters, minimum_threshold
from ...secagg.identity import TrustStore
from ...secagg.messages import (
    AdvertiseKeys,
    ConsistencyResponse,
    MaskedInput,
    Message as SecAggMessage,
    ShareKeys,
    UnmaskResponse,
    decode_message,
)
from ...secagg.server import SecAggOutbound
from ...secagg.stages import SecAggStep
from ..identity import TRUST_STORE_KEY, load_trust_store
from .constants import RECORD_KEY_CONFIGS, Key, Stage

__all__ = ["SecAggPlusWorkflow", "SecAggRoundOutcome"]

_MODULI = {1 << 32: Modulus.U32, 1 << 64: Modulus.U64}
_STEP = {  # Flower's stage names -> the one name of each secure-aggregation step (in the logs)
    Stage.SETUP: SecAggStep.ADVERTISE,
    Stage.SHARE_KEYS: SecAggStep.SHARE,
    Stage.COLLECT_MASKED_VECTORS: SecAggStep.INPUT,
    Stage.CONSISTENCY_CHECK: SecAggStep.UNMASK,
    Stage.UNMASK: SecAggStep.UNMASK,
}
_EXPECTED = {
    Stage.SETUP: AdvertiseKeys,
    Stage.SHARE_KEYS: ShareKeys,
    Stage.COLLECT_MASKED_VECTORS: MaskedInput,
    Stage.CONSISTENCY_CHECK: ConsistencyResponse,
    Stage.UNMASK: UnmaskResponse,
}


@dataclass
class SecAggRoundOutcome:
    """What one round of :class:`SecAggPlusWorkflow` did; node ids are Flower's."""

    server_round: int
    node_to_party: dict[int, int] = field(default_factory=dict)
    neighbours: int = 0
    threshold: int = 0
    advertised: frozenset[int] = frozenset()  # U1: nodes whose keys were accepted
    shared: frozenset[int] = frozenset()  # U2: nodes that sent their shares
    uploaded: frozenset[int] = frozenset()  # U3: nodes whose masked input is in the sum
    signed: frozenset[int] = frozenset()  # U4 (malicious mode): nodes whose consistency signature was accepted
    unmasked: frozenset[int] = frozenset()  # U5: nodes that answered the unmasking request
    malicious: bool = False  # the round ran in malicious mode (a trust store was given)
    aggregate: list[np.ndarray] | None = None  # the weighted mean, shaped like the global parameters
    total_weight: float | None = None  # the sum of the accepted nodes' num_examples
    error: str | None = None  # why the round halted (None: it completed)
    ignored_replies: int = 0  # late, duplicate, foreign, malformed or misaddressed replies
    failures: int = 0  # Error replies (counted as dropouts)


class SecAggPlusWorkflow:
    """Flower's ``SecAggPlusWorkflow`` interface, running fedprivacy's SecAgg+.

    Clients upload ``[w * params, w]``, quantized and masked, with ``w = num_examples``; the server
    learns only the sum over the nodes it accepted and hands the weighted mean to the strategy.

    Parameters
    ----------
    num_shares : int | float
        Shares per secret, the node's own included (Flower's convention): each node's secrets go to
        its ``k = num_shares - 1`` neighbours in the relabelled Harary graph of SecAgg+ (an even
        ``num_shares`` is raised to the next odd number, as Flower's float path does). A float is a
        fraction of the sampled nodes. ``num_shares >= n`` gives the complete graph (classic SecAgg),
        in which a node also keeps a share of its own secrets.
    reconstruction_threshold : int | float
        ``t``: shares needed to rebuild a secret; a float is a fraction of ``num_shares`` (at least 2).
        A ``t`` below what the nodes' default :class:`~fedprivacy.policy.ClientPolicy` accepts for the
        sampled ``(n, k)`` (the semi-malicious bound, with ``corrupt_fraction``) is raised to it, with a
        warning: the nodes would refuse the round otherwise.
        In a SecAgg+ graph the shares go to the ``k`` neighbours only, so ``t <= k`` and a node that
        survives needs ``t`` surviving neighbours (Flower counts the node itself as one of them).
    max_weight : float (default: 1000.0)
        The largest weight a node's ``num_examples`` counts for; a node that reports more is weighted
        as ``max_weight`` (with a warning) instead of risking an overflow.
    clipping_range : float (default: 8.0)
        Each parameter is clipped to ``[-clipping_range, clipping_range]`` before it is weighted.
    quantization_range : int | None (default: None)
        Levels into which one node's weighted value range ``[-c * max_weight, c * max_weight]`` is
        quantized (Flower maps ``[-c, c]`` after scaling by ``w / max_weight``: the same resolution).
        ``None`` takes the finest resolution that cannot overflow for the sampled nodes; a value that
        could overflow with them halts the round with an error.
    modulus_range : int (default: 2**32)
        ``2**32`` or ``2**64``: the ring the masked sums live in.
    timeout : float | None (default: None)
        Seconds each stage waits for replies; ``None`` waits for all of them (a node that never
        answers then stalls the round, as with Flower's workflow).
    corrupt_fraction, dropout_fraction : float (default: 0.05, 0.1)
        Used only to check ``(k, t)`` against fedprivacy's security (2^-40) and correctness (2^-20)
        bounds for the sampled ``n``; a pair outside them is logged as a warning, not refused.
    ddp : DDPSettings | None (default: None)
        Distributed DP for the updates, as an option (like Flower's DP wrappers, but the noise is
        exact, added by each node before masking and sized for the threshold t; protocols/ddp/spec.md):
        each node clips its whole weighted vector (weight ``num_examples / max_weight``) to
        ``ddp.l2_clip`` in L2 and adds discrete Gaussian noise; nodes running fedprivacy's mod do it.
    trust_store : TrustStore | str | os.PathLike | None (default: None)
        The deployment's trust store (party id -> Ed25519 key), or the path of its JSON file: runs
        malicious mode. ``None`` reads the path from the run config key ``fedprivacy-trust-store``
        if set, and otherwise runs the semi-malicious protocol.

    Notes
    -----
    Validation errors in the arguments raise :class:`~fedprivacy.errors.InvalidParameters` (a
    ``ValueError``), as Flower's workflow raises ``ValueError``.
    """

    def __init__(
        self,
        num_shares: int | float,  # noqa: PYI041 -- an int is a count, a float a fraction (as in Flower)
        reconstruction_threshold: int | float,  # noqa: PYI041 -- likewise
        *,
        max_weight: float = 1000.0,
        clipping_range: float = 8.0,
        quantization_range: int | None = None,
        modulus_range: int = 1 << 32,
        timeout: float | None = None,
        corrupt_fraction: float = 0.05,
        dropout_fraction: float = 0.1,
        ddp: DDPSettings | None = None,
        trust_store: TrustStore | str | os.PathLike[str] | None = None,
    ) -> None:
        _check_number("num_shares", num_shares)
        if isinstance(num_shares, int) and num_shares <= 2:
            raise InvalidParameters("`num_shares` as an integer must be greater than 2.")
        if isinstance(num_shares, float) and not 0 < num_shares <= 1:
            raise InvalidParameters("`num_shares` as a float must be in (0, 1].")
        _check_number("reconstruction_threshold", reconstruction_threshold)
        if isinstance(reconstruction_threshold, int):
            if reconstruction_threshold < 2:
                raise InvalidParameters("`reconstruction_threshold` as an integer must be at least 2.")
            if isinstance(num_shares, int) and reconstruction_threshold >= num_shares:
                raise InvalidParameters("`reconstruction_threshold` must be less than `num_shares`.")
        elif not 0 < reconstruction_threshold <= 1:
            raise InvalidParameters("`reconstruction_threshold` as a float must be in (0, 1].")
        for name, value in (("max_weight", max_weight), ("clipping_range", clipping_range)):
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0):
                raise InvalidParameters(f"`{name}` must be a positive finite number, got {value!r}.")
        if quantization_range is not None and (
            not isinstance(quantization_range, int) or isinstance(quantization_range, bool) or quantization_range < 2
        ):
            raise InvalidParameters(f"`quantization_range` must be None or an integer >= 2, got {quantization_range!r}.")
        if modulus_range not in _MODULI:
            raise InvalidParameters(f"`modulus_range` must be 2**32 or 2**64, got {modulus_range!r}.")
        if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
            raise InvalidParameters(f"`timeout` must be None or a positive number, got {timeout!r}.")
        for name, value in (("corrupt_fraction", corrupt_fraction), ("dropout_fraction", dropout_fraction)):
            if not (isinstance(value, (int, float)) and 0 <= value < 1):
                raise InvalidParameters(f"`{name}` must be in [0, 1), got {value!r}.")
        self.num_shares = num_shares
        self.reconstruction_threshold = reconstruction_threshold
        self.max_weight = float(max_weight)
        self.clipping_range = float(clipping_range)
        self.quantization_range = quantization_range
        self.modulus_range = modulus_range
        self.timeout = timeout
        self.corrupt_fraction = corrupt_fraction
        self.dropout_fraction = dropout_fraction
        if ddp is not None and not isinstance(ddp, DDPSettings):
            raise InvalidParameters("`ddp` must be None or fedprivacy.ddp.DDPSettings.")
        self.ddp = ddp
        if trust_store is not None and not isinstance(trust_store, TrustStore):
            trust_store = load_trust_store(trust_store)
        self.trust_store: TrustStore | None = trust_store
        self.last_round: SecAggRoundOutcome | None = None

    # -- parameters of one round ---------------------------------------------------------------------

    def graph(self, clients: int) -> tuple[int, int]:
        """``(k, t)`` for ``clients`` sampled nodes (``k = clients - 1``: the complete graph).

        Raises :class:`~fedprivacy.errors.InvalidParameters` when ``t`` cannot work with that ``k``.
        """
        if clients < 2:
            raise InvalidParameters(f"secure aggregation needs at least 2 nodes, {clients} sampled")
        if isinstance(self.num_shares, float):
            shares = round(self.num_shares * clients)
            if shares <= 2:
                shares = clients
        else:
            shares = self.num_shares
        neighbours = shares - 1 if shares % 2 else shares  # an even share count goes up to the next odd one
        neighbours = min(neighbours, clients - 1)
        if isinstance(self.reconstruction_threshold, float):
            threshold = max(round(self.reconstruction_threshold * (neighbours + 1)), 2)
        else:
            threshold = self.reconstruction_threshold
        holders = clients if neighbours == clients - 1 else neighbours
        # Nodes running fedprivacy's mod refuse a threshold below the semi-malicious bound of their
        # default policy (fedprivacy.policy.ClientPolicy): never ask for less.
        floor = minimum_threshold(clients, neighbours, self.corrupt_fraction, Adversary.SEMI_MALICIOUS)
        if threshold < floor:
            log(WARNING, "SecAgg+: reconstruction threshold %s raised to %s (n=%s, k=%s), the least the "
                "nodes' default policy accepts against a server that may lie about dropouts", threshold, floor,
                clients, neighbours)
            threshold = floor
        if threshold > holders:
            raise InvalidParameters(
                f"reconstruction threshold {threshold} exceeds the {holders} share holders of each node "
                f"(n={clients}, k={neighbours})"
            )
        return neighbours, threshold

    def quantizer(self, clients: int) -> Quantizer:
        """The quantizer of a round with ``clients`` sampled nodes (``InvalidParameters`` if it could overflow).

        Under distributed DP: weights num_examples / max_weight in [0, 1], at the DDP scale."""
        modulus = _MODULI[self.modulus_range]
        if self.ddp is not None:
            return Quantizer(modulus, self.clipping_range, clients, 1.0, self.ddp.scale)
        scale = None
        if self.quantization_range is not None:
            scale = self.quantization_range / (2.0 * self.clipping_range * self.max_weight)
        return Quantizer(modulus, self.clipping_range, clients, self.max_weight, scale)

    # -- the workflow --------------------------------------------------------------------------------

    def __call__(self, grid: Grid, context: Context) -> None:
        """Run one round of fedprivacy's SecAgg+ (one fit round of ``DefaultWorkflow``)."""
        if not isinstance(context, LegacyContext):
            raise TypeError(f"Expect a LegacyContext, but get {type(context).__name__}.")
        log(INFO, "Secure aggregation (fedprivacy SecAgg+) commencing.")
        outcome = _Round(self, grid, context).run()
        self.last_round = outcome
        if outcome.error is not None:
            log(ERROR, "Secure aggregation halted: %s", outcome.error)
        else:
            log(INFO, "Secure aggregation completed.")


def _check_number(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidParameters(f"`{name}` must be of type int or float, got {value!r}.")


class _Halt(Exception):
    """The round stops here (the message is logged by the workflow)."""


class _Round:
    """One round: the node <-> party mapping, the protocol server and the replies kept for the strategy."""

    def __init__(self, workflow: SecAggPlusWorkflow, grid: Grid, context: LegacyContext) -> None:
        self.workflow = workflow
        self.grid = grid
        self.context = context
        cfg = context.state.config_records[MAIN_CONFIGS_RECORD]
        self.current_round = cast(int, cfg[WorkflowKey.CURRENT_ROUND])
        self.outcome = SecAggRoundOutcome(self.current_round)
        self.failures: list[BaseException] = []
        self.fit_results: dict[int, FitRes] = {}

    def run(self) -> SecAggRoundOutcome:
        try:
            self._run()
        except _Halt as exc:
            self.outcome.error = str(exc)
        except RoundAborted as exc:
            self.outcome.error = str(exc)
        finally:
            server = getattr(self, "server", None)
            if server is not None:
                to_nodes = self.party_to_node
                self.outcome.advertised = frozenset(to_nodes[p] for p in server.advertised_ids)
                self.outcome.shared = frozenset(to_nodes[p] for p in server.shared_ids)
                self.outcome.uploaded = frozenset(to_nodes[p] for p in server.input_ids)
                self.outcome.signed = frozenset(to_nodes[p] for p in server.signed_ids)
                self.outcome.unmasked = frozenset(to_nodes[p] for p in server.unmask_ids)
            self.outcome.failures = len(self.failures)
        return self.outcome

    def _run(self) -> None:
        workflow, context = self.workflow, self.context
        parameters = compat.arrayrecord_to_parameters(context.state.array_records[MAIN_PARAMS_RECORD], keep_input=True)
        instructions = context.strategy.configure_fit(self.current_round, parameters, context.client_manager)
        if not instructions:
            log(INFO, "configure_fit: no clients selected, cancel")
            raise _Halt("configure_fit selected no clients")
        log(
            INFO,
            "configure_fit: strategy sampled %s clients (out of %s)",
            len(instructions),
            context.client_manager.num_available(),
        )
        self.fitins = {proxy.node_id: compat.fitins_to_recorddict(fitins, True) for proxy, fitins in instructions}
        self.proxies: dict[int, ClientProxy] = {proxy.node_id: proxy for proxy, _ in instructions}
        nodes = sorted(self.fitins)
        trust = self._trust_store()
        self.outcome.malicious = trust is not None
        if trust is not None:
            self.node_to_party = self._identify(nodes, trust)
            nodes = sorted(self.node_to_party)
        else:
            self.node_to_party = {node: index + 1 for index, node in enumerate(nodes)}
        self.party_to_node = {party: node for node, party in self.node_to_party.items()}
        party_ids = tuple(sorted(self.party_to_node))
        n = len(nodes)
        self.template = parameters_to_ndarrays(parameters)  # shapes and dtypes of the global parameters
        dim = int(sum(a.size for a in self.template))
        try:
            neighbours, threshold = workflow.graph(n)
            quantizer = workflow.quantizer(n)
            config = SecAggConfig(party_ids, dim + 1, quantizer.modulus, neighbours, threshold,
                                  os.urandom(32), self.current_round, malicious=trust is not None)
        except InvalidParameters as exc:
            raise _Halt(str(exc)) from None
        self._warn_if_outside_bounds(n, neighbours, threshold)
        self.outcome.node_to_party = dict(self.node_to_party)
        self.outcome.neighbours, self.outcome.threshold = neighbours, threshold
        self.config, self.quantizer = config, quantizer
        self.server = SecAggServer(config, trust=trust)
        log(DEBUG, "SecAgg+ round %s: n=%s, k=%s, t=%s, D=%s", self.current_round, n, neighbours, threshold, dim)

        setup = {
            node: ConfigRecord(
                {
                    Key.STAGE: Stage.SETUP,
                    Key.SESSION: config.digest,
                    Key.CONFIG: config.encode(),
                    Key.PARTY_ID: self.node_to_party[node],
                    Key.CLIPPING_RANGE: float(quantizer.clip),
                    Key.MAX_WEIGHT: float(quantizer.max_weight if workflow.ddp is None else workflow.max_weight),
                    Key.SCALE: float(quantizer.scale or 0.0),
                    **_ddp_keys(workflow.ddp),
                }
            )
            for node in nodes
        }
        outbound = self._stage(Stage.SETUP, setup)
        outbound = self._stage(Stage.SHARE_KEYS, self._records(Stage.SHARE_KEYS, outbound))
        outbound = self._stage(Stage.COLLECT_MASKED_VECTORS, self._records(Stage.COLLECT_MASKED_VECTORS, outbound))
        if config.malicious:
            outbound = self._stage(Stage.CONSISTENCY_CHECK, self._records(Stage.CONSISTENCY_CHECK, outbound))
        self._stage(Stage.UNMASK, self._records(Stage.UNMASK, outbound))
        self._hand_to_strategy(self.server.result)

    def _trust_store(self) -> TrustStore | None:
        if self.workflow.trust_store is not None:
            return self.workflow.trust_store
        path = self.context.run_config.get(TRUST_STORE_KEY)
        if path is None:
            return None
        try:
            return load_trust_store(str(path))
        except InvalidParameters as exc:
            raise _Halt(f"run config {TRUST_STORE_KEY}: {exc}") from None

    def _identify(self, nodes: list[int], trust: TrustStore) -> dict[int, int]:
        """Malicious mode: each node names the party id of its identity; keep the nodes whose id is in
        the trust store and named by no other node (node -> party id)."""
        messages = [
            Message(content=RecordDict({RECORD_KEY_CONFIGS: ConfigRecord({Key.STAGE: Stage.IDENTIFY})}), dst_node_id=node,
                    message_type=MessageType.TRAIN, group_id=str(self.current_round))
            for node in nodes
        ]
        claimed: dict[int, int] = {}
        for reply in self.grid.send_and_receive(messages, timeout=self.workflow.timeout):
            node = reply.metadata.src_node_id
            if node not in self.fitins or node in claimed:
                self.outcome.ignored_replies += 1
                continue
            if reply.has_error():
                self.failures.append(Exception(reply.error))
                log(WARNING, "[identify] node %s has no usable identity: %s", node, reply.error.reason)
                continue
            record = reply.content.config_records.get(RECORD_KEY_CONFIGS) if reply.has_content() else None
            party = None if record is None or record.get(Key.STAGE) != Stage.IDENTIFY else record.get(Key.PARTY_ID)
            if type(party) is not int:  # bool is an int, and must not pass for one
                self.outcome.ignored_replies += 1
                continue
            if party not in trust:
                log(WARNING, "[identify] node %s names party %s, which the trust store does not know: left out", node, party)
                continue
            claimed[node] = party
        owners: dict[int, list[int]] = {}
        for node, party in claimed.items():
            owners.setdefault(party, []).append(node)
        for party, named_by in owners.items():
            if len(named_by) > 1:
                log(WARNING, "[identify] nodes %s all name party %s: all left out", sorted(named_by), party)
        return {node: party for node, party in claimed.items() if len(owners[party]) == 1}

    def _warn_if_outside_bounds(self, n: int, neighbours: int, threshold: int) -> None:
        workflow = self.workflow
        try:
            check_graph_parameters(n, neighbours, threshold, workflow.corrupt_fraction, workflow.dropout_fraction,
                                   Adversary.SEMI_MALICIOUS)
        except InvalidParameters as exc:
            log(WARNING, "SecAgg+ parameters outside fedprivacy's bounds (the round goes on): %s", exc)

    def _records(self, stage: str, outbound: list[SecAggOutbound]) -> dict[int, ConfigRecord]:
        return {
            self.party_to_node[item.recipient]: ConfigRecord(
                {Key.STAGE: stage, Key.SESSION: self.config.digest, Key.MESSAGE: item.message.to_bytes()}
            )
            for item in outbound
        }

    def _stage(self, stage: str, records: dict[int, ConfigRecord]) -> list[SecAggOutbound]:
        """Send one stage's messages, feed the acceptable replies to the server, close the stage."""
        messages = []
        for node, record in records.items():
            if stage == Stage.COLLECT_MASKED_VECTORS:
                content = self.fitins.pop(node)  # the fit instructions ride along, as in Flower's workflow
                content.config_records[RECORD_KEY_CONFIGS] = record
            else:
                content = RecordDict({RECORD_KEY_CONFIGS: record})
            messages.append(
                Message(content=content, dst_node_id=node, message_type=MessageType.TRAIN, group_id=str(self.current_round))
            )
        label = f"{_STEP[stage].value}:{stage}"
        log(DEBUG, "[%s] sending to %s nodes", label, len(messages))
        replies = self.grid.send_and_receive(messages, timeout=self.workflow.timeout)
        del messages
        accepted = self._accept(stage, set(records), replies)
        log(DEBUG, "[%s] accepted replies from %s nodes", label, accepted)
        return self.server.close_stage()  # RoundAborted: fewer than t left somewhere

    def _accept(self, stage: str, asked: set[int], replies: Iterable[Message]) -> int:
        expected = _EXPECTED[stage]
        accepted = 0
        for reply in replies:
            node = reply.metadata.src_node_id
            party = self.node_to_party.get(node)
            if party is None or node not in asked:
                self.outcome.ignored_replies += 1
                continue
            if reply.has_error():
                self.failures.append(Exception(reply.error))
                log(DEBUG, "[%s:%s] node %s answered with an error: %s", _STEP[stage].value, stage, node, reply.error.reason)
                continue
            message = self._decode(stage, reply)
            if message is None or not isinstance(message, expected) or getattr(message, "sender", None) != party:
                self.outcome.ignored_replies += 1
                continue
            if stage == Stage.COLLECT_MASKED_VECTORS:
                if node in self.fit_results:
                    self.outcome.ignored_replies += 1
                    continue
                try:
                    fitres = compat.recorddict_to_fitres(reply.content, keep_input=False)
                except (KeyError, TypeError, ValueError):
                    self.outcome.ignored_replies += 1
                    continue
            before = len(self.server.ignored)
            self.server.receive(message)
            if len(self.server.ignored) > before:  # a duplicate, or a message the server refused
                self.outcome.ignored_replies += 1
                continue
            if stage == Stage.COLLECT_MASKED_VECTORS:
                self.fit_results[node] = fitres
            accepted += 1
        return accepted

    def _decode(self, stage: str, reply: Message) -> SecAggMessage | None:
        if not reply.has_content():
            return None
        record = reply.content.config_records.get(RECORD_KEY_CONFIGS)
        if record is None or record.get(Key.STAGE) != stage or record.get(Key.SESSION) != self.config.digest:
            return None  # another stage's or another round's reply: late, or not ours
        data = record.get(Key.MESSAGE)
        if not isinstance(data, bytes):
            return None
        try:
            return decode_message(data)
        except DecodeError:
            return None

    def _hand_to_strategy(self, summed: np.ndarray) -> None:
        context = self.context
        try:
            totals, weight = self.quantizer.decode(summed)
        except FedPrivacyError as exc:
            raise _Halt(f"the secure sum cannot be decoded: {exc}") from None
        if not weight > 0:
            raise _Halt("the accepted nodes' total weight (num_examples) is zero")
        mean = totals / weight
        arrays, offset = [], 0
        for template in self.template:
            part = mean[offset : offset + template.size].reshape(template.shape)
            offset += template.size
            arrays.append(part.astype(template.dtype) if np.issubdtype(template.dtype, np.floating) else part)
        self.outcome.aggregate = arrays
        self.outcome.total_weight = float(weight)
        parameters = ndarrays_to_parameters(arrays)
        results: list[tuple[ClientProxy, FitRes]] = []
        for node in sorted(self.fit_results):
            if self.node_to_party[node] in self.server.input_ids:
                fitres = self.fit_results[node]
                fitres.parameters = parameters
                results.append((self.proxies[node], fitres))
        log(INFO, "aggregate_fit: received %s results and %s failures", len(results), len(self.failures))
        parameters_aggregated, metrics_aggregated = context.strategy.aggregate_fit(
            self.current_round, results, self.failures  # type: ignore[arg-type]
        )
        if parameters_aggregated:
            context.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(parameters_aggregated, True)
            context.history.add_metrics_distributed_fit(server_round=self.current_round, metrics=metrics_aggregated)


def _ddp_keys(ddp: DDPSettings | None) -> dict[str, ConfigRecordValues]:
    """The setup record's distributed-DP keys (none without DDP)."""
    if ddp is None:
        return {}
    return {Key.DDP_L2_CLIP: float(ddp.l2_clip), Key.DDP_NOISE_MULTIPLIER: float(ddp.noise_multiplier),
            Key.DDP_SENSITIVITY: int(ddp.sensitivity)}
