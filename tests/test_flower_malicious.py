"""Malicious mode through Flower (protocols/secagg/spec.md §14): the SecAgg+ workflow with a trust store,
nodes with identity files in their node config, the identify and consistency-check stages, over the
loopback grid of ``tests/test_flower_secagg.py``; a server that forges or omits the consistency
signatures is refused by the nodes (and shown to work against a node that skips the check)."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict  # noqa: E402
from flwr.supercore.task_identity import TaskIdentity  # noqa: E402

from fedprivacy.adapters.flower import (  # noqa: E402
    RECORD_KEY_CONFIGS,
    RECORD_KEY_STATE,
    Key,
    SecAggPlusWorkflow,
    Stage,
    secaggplus_mod,
)
from fedprivacy.adapters.identity import (  # noqa: E402
    IDENTITY_KEY,
    TRUST_STORE_KEY,
    identity_from_config,
    save_identity,
    save_trust_store,
)  # noqa: E402
from fedprivacy.hazmat.prg import DeterministicRandomness  # noqa: E402
from fedprivacy.secagg import SecAggClient, make_identities  # noqa: E402
from fedprivacy.secagg.messages import MessageType as SecAggType, UnmaskRequest, decode_message  # noqa: E402
from fedprivacy_bench.grid import InProcessGrid  # noqa: E402
from flwr.server.workflow import DefaultWorkflow  # noqa: E402

from tests.test_flower_secagg import DIM, _legacy_context, _node_ids, _parameters, _tolerance  # noqa: E402
from secagg_demo import client_app as demo_client  # noqa: E402
from secagg_demo.task import weight, weighted_mean  # noqa: E402


@pytest.fixture(autouse=True)
def task_identity(monkeypatch):
    for name, value in (("_run_id", 7), ("_node_id", 0), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, name, value)


PARTY_BASE = 100  # party ids of the identity files: deliberately not Flower's node ids, nor 1..n


def _deployment(tmp_path, n):
    """Identity files for parties 101..100+n and the trust store naming them; node -> node config."""
    parties = [PARTY_BASE + 1 + i for i in range(n)]
    identities, trust = make_identities(parties, DeterministicRandomness("flower-malicious"))
    save_trust_store(tmp_path / "trust.json", trust)
    nodes = _node_ids(n)
    configs = {}
    for node, partition in nodes.items():
        path = tmp_path / f"identity-{partition}.json"
        save_identity(path, identities[parties[partition]])
        configs[node] = {"partition-id": partition, IDENTITY_KEY: str(path), TRUST_STORE_KEY: str(tmp_path / "trust.json")}
    return nodes, configs, trust


def _run(tmp_path, n, *, grid_class=InProcessGrid, configs=None, drop=None, trust_in_run_config=False, **args):
    nodes, default_configs, trust = _deployment(tmp_path, n)
    configs = default_configs if configs is None else configs(default_configs)
    grid = grid_class(demo_client.make_app(DIM, -1), configs, drop=drop)
    workflow = SecAggPlusWorkflow(**{"num_shares": n, "reconstruction_threshold": 2,
                                     "trust_store": None if trust_in_run_config else trust, **args})
    context = _legacy_context(n)
    if trust_in_run_config:
        context.run_config[TRUST_STORE_KEY] = str(tmp_path / "trust.json")
    DefaultWorkflow(fit_workflow=workflow)(grid, context)
    return workflow, context, grid, nodes


def test_a_malicious_round_completes_through_flower_with_the_identities_party_ids(tmp_path):
    delivered = []

    def drop(node, message):  # partition 3 vanishes before unmasking (after signing)
        record = message.content.config_records.get(RECORD_KEY_CONFIGS) if message.has_content() else None
        if record is not None and Key.MESSAGE in record:
            delivered.append(record[Key.MESSAGE][6])
        return record is not None and nodes[node] == 3 and record[Key.STAGE] == Stage.UNMASK

    nodes = _node_ids(7)
    workflow, context, grid, _ = _run(tmp_path, 7, drop=drop, num_shares=5)
    outcome = workflow.last_round
    assert outcome.error is None and outcome.malicious
    assert outcome.node_to_party == {node: PARTY_BASE + 1 + partition for node, partition in nodes.items()}
    assert outcome.signed == outcome.uploaded == frozenset(nodes)  # everyone signed U3, 3 then vanished
    assert sorted(nodes[node] for node in outcome.unmasked) == [0, 1, 2, 4, 5, 6]
    every = list(range(7))
    assert np.abs(_parameters(context) - weighted_mean(every, DIM)).max() <= _tolerance(workflow, 7, every)
    assert outcome.total_weight == sum(weight(p) for p in every)
    # Signed key broadcasts, consistency requests, signed unmasking requests went out.
    assert {SecAggType.SIGNED_KEY_BROADCAST, SecAggType.CONSISTENCY_REQUEST, SecAggType.SIGNED_UNMASK_REQUEST} <= set(delivered)
    for node, context_ in grid.contexts.items():
        if nodes[node] != 3:
            stored = context_.state.config_records[RECORD_KEY_STATE]
            identity, trust = identity_from_config(context_.node_config)
            assert SecAggClient.restore(stored[Key.CLIENT], identity=identity, trust=trust).stage.value == "completed"


def test_the_trust_store_can_come_from_the_run_config(tmp_path):
    workflow, context, _, nodes = _run(tmp_path, 5, trust_in_run_config=True)
    assert workflow.last_round.error is None and workflow.last_round.malicious
    assert np.abs(_parameters(context) - weighted_mean(list(range(5)), DIM)).max() <= _tolerance(workflow, 5, list(range(5)))


class SignatureTamperingGrid(InProcessGrid):
    """A server that forwards forged (``mode = "forge"``) or no (``"omit"``) consistency signatures
    to one node in the unmasking stage."""

    mode = "forge"
    target = None

    def push_messages(self, messages):
        messages = list(messages)
        for message in messages:
            record = message.content.config_records.get(RECORD_KEY_CONFIGS)
            if record is not None and record.get(Key.STAGE) == Stage.UNMASK and message.metadata.dst_node_id == self.target:
                request = decode_message(record[Key.MESSAGE])
                if self.mode == "forge":
                    signatures = tuple((signer, bytes(64)) for signer, _ in request.signatures)
                else:
                    signatures = ()
                record[Key.MESSAGE] = UnmaskRequest(request.recipient, request.alive_ids, request.dropped_ids,
                                                    signatures).to_bytes()
        return super().push_messages(messages)


@pytest.mark.parametrize("mode, reason", [("forge", "does not verify|is not over the survivor set"),
                                          ("omit", "consistency signatures, (threshold|the quorum)")])
def test_nodes_refuse_forged_or_omitted_consistency_signatures(tmp_path, monkeypatch, mode, reason):
    SignatureTamperingGrid.mode, SignatureTamperingGrid.target = mode, min(_node_ids(5))
    # Weakened node first: a client that skips the signature check releases its shares to this server.
    monkeypatch.setattr(SecAggClient, "_check_consistency_signatures", lambda self, message, alive, dropped: None)
    weak = tmp_path / "weak"
    weak.mkdir()
    workflow, _, grid, _ = _run(weak, 5, grid_class=SignatureTamperingGrid)
    assert SignatureTamperingGrid.target in workflow.last_round.unmasked  # the attack gets its answer
    monkeypatch.undo()
    TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = 7, 0, 1
    # The real node refuses: an Error reply, nothing released, its secrets wiped.
    workflow, _, grid, _ = _run(tmp_path, 5, grid_class=SignatureTamperingGrid)
    target = SignatureTamperingGrid.target
    reasons = [text for node, text in grid.error_replies if node == target]
    assert reasons and re.search(reason, reasons[0]), reasons
    assert target not in workflow.last_round.unmasked
    assert RECORD_KEY_STATE not in grid.contexts[target].state.config_records


def test_nodes_with_unknown_duplicate_or_missing_identities_are_left_out(tmp_path):
    nodes = _node_ids(7)
    by_partition = {p: node for node, p in nodes.items()}

    def configs(default):
        changed = {node: dict(config) for node, config in default.items()}
        changed[by_partition[1]][IDENTITY_KEY] = changed[by_partition[2]][IDENTITY_KEY]  # 1 and 2 claim one party
        del changed[by_partition[3]][IDENTITY_KEY], changed[by_partition[3]][TRUST_STORE_KEY]  # no identity
        return changed

    workflow, context, grid, _ = _run(tmp_path, 7, configs=configs)
    outcome = workflow.last_round
    assert outcome.error is None
    kept = [0, 4, 5, 6]
    assert sorted(nodes[node] for node in outcome.node_to_party) == kept
    assert any(node == by_partition[3] and "has no identity" in text for node, text in grid.error_replies)
    assert np.abs(_parameters(context) - weighted_mean(kept, DIM)).max() <= _tolerance(workflow, 4, kept)


def test_the_mod_refuses_a_setup_naming_another_party_than_its_identity(tmp_path):
    nodes, configs, trust = _deployment(tmp_path, 4)
    from fedprivacy.secagg import SecAggConfig
    from fedprivacy.hazmat.field import Modulus

    node = min(nodes)
    config = SecAggConfig(tuple(sorted(trust)), 5, Modulus.U32, 3, 3, b"s" * 32, 1, malicious=True)
    other = PARTY_BASE + 1 + (nodes[node] + 1) % 4
    record = ConfigRecord({Key.STAGE: Stage.SETUP, Key.SESSION: config.digest, Key.CONFIG: config.encode(),
                           Key.PARTY_ID: other, Key.CLIPPING_RANGE: 8.0, Key.MAX_WEIGHT: 100.0, Key.SCALE: 1.0})
    context = Context(run_id=1, node_id=node, node_config=configs[node], state=RecordDict(), run_config={})
    message = Message(RecordDict({RECORD_KEY_CONFIGS: record}), dst_node_id=node, message_type=MessageType.TRAIN)
    reply = secaggplus_mod(message, context, lambda m, c: None)
    assert reply.has_error() and f"names this node party {other}" in reply.error.reason
    # identify answers the identity's party id
    ask = Message(RecordDict({RECORD_KEY_CONFIGS: ConfigRecord({Key.STAGE: Stage.IDENTIFY})}), dst_node_id=node,
                  message_type=MessageType.TRAIN)
    answer = secaggplus_mod(ask, context, lambda m, c: None)
    assert answer.content.config_records[RECORD_KEY_CONFIGS][Key.PARTY_ID] == PARTY_BASE + 1 + nodes[node]
