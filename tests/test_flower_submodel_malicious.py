"""Secure submodel rounds through Flower in malicious mode (protocols/secagg/spec.md §14): the workflow
maps Flower node ids to the party ids the nodes' identity files name, both secure sums run signed; a
node called by another party id than its identity's refuses; nodes without a usable identity are left
out. Over the loopback grid of ``tests/test_flower_submodel.py``."""

from __future__ import annotations

import pytest

pytest.importorskip("flwr")
pytest.importorskip("ray")

from flwr.app import ConfigRecord, Context, Message, RecordDict  # noqa: E402

from fedprivacy.adapters.flower import SecureSubmodelWorkflow  # noqa: E402
from fedprivacy.adapters.flower.submodel import IDENTIFY_RECORD  # noqa: E402
from fedprivacy.adapters.identity import IDENTITY_KEY, TRUST_STORE_KEY, save_identity, save_trust_store  # noqa: E402
from fedprivacy.hazmat.prg import DeterministicRandomness  # noqa: E402
from fedprivacy.secagg import make_identities  # noqa: E402
from fedprivacy.submodel.messages import PhaseMessage, decode_submodel_message  # noqa: E402

from tests.test_flower_submodel import SETTINGS, _configs, _loopback, task_identity  # noqa: E402,F401


def _deployment(tmp_path, count, parties=None):
    """Node configs with identity files: partition i is party ``parties[i]`` (default 10 * (count - i))."""
    parties = parties or [10 * (count - i) for i in range(count)]  # not positions, not in node order
    identities, trust = make_identities(sorted(set(parties)), DeterministicRandomness("flower-submodel-malicious"))
    save_trust_store(tmp_path / "trust.json", trust)
    extra = {}
    for i, party in enumerate(parties):
        save_identity(tmp_path / f"id-{i}.json", identities[party])
        extra[i] = {IDENTITY_KEY: str(tmp_path / f"id-{i}.json"), TRUST_STORE_KEY: str(tmp_path / "trust.json")}
    return _configs(count, extra), trust, parties


def _payload_types(seen):
    def deliver(node, message, context):
        record = message.content.config_records.get("fedprivacy.submodel")
        for data in record["messages"] if record is not None else []:
            decoded = decode_submodel_message(data)
            if isinstance(decoded, PhaseMessage):
                seen.add(type(decoded.payload).__name__ + ("+signed" if getattr(decoded.payload, "signatures", None) else ""))
    return deliver


def test_a_malicious_round_runs_over_the_identities_party_ids(task_identity, tmp_path):
    configs, trust, parties = _deployment(tmp_path, 5)
    seen: set[str] = set()
    grid, model = _loopback(configs, deliver=_payload_types(seen))
    workflow = SecureSubmodelWorkflow(model, SETTINGS, min_nodes=5, trust_store=trust)
    result = workflow.run_round(grid, 1)
    assert workflow.parties == {node: parties[config["partition-id"]] for node, config in configs.items()}
    assert result.contributors == frozenset(parties)
    assert {"ConsistencyRequest", "UnmaskRequest+signed"} <= seen  # both sums ran the consistency check
    assert workflow.exchanges == [10]  # identify, then 7 with one consistency check per secure sum


def test_the_trust_store_can_come_from_the_run_config(task_identity, tmp_path):
    configs, _, parties = _deployment(tmp_path, 4)
    grid, model = _loopback(configs)
    workflow = SecureSubmodelWorkflow(model, SETTINGS, num_rounds=1, min_nodes=4)
    workflow(grid, Context(run_id=7, node_id=0, node_config={}, state=RecordDict(),
                           run_config={TRUST_STORE_KEY: str(tmp_path / "trust.json")}))
    assert workflow.trust_store is not None and workflow.results[0].contributors == frozenset(parties)


def test_nodes_with_unknown_duplicate_or_missing_identities_are_left_out(task_identity, tmp_path):
    configs, _, parties = _deployment(tmp_path, 6, parties=[10, 20, 30, 30, 50, 60])  # partitions 2 and 3: party 30
    nodes = sorted(configs)
    del configs[nodes[4]][IDENTITY_KEY], configs[nodes[4]][TRUST_STORE_KEY]  # partition 4: no identity
    grid, model = _loopback(configs)
    result = SecureSubmodelWorkflow(model, SETTINGS, min_nodes=6, trust_store=tmp_path / "trust.json").run_round(grid, 1)
    assert result.contributors == frozenset({10, 20, 60})


def test_a_node_called_by_another_party_than_its_identity_refuses(task_identity, tmp_path):
    configs, trust, parties = _deployment(tmp_path, 5)
    nodes = sorted(configs)
    refusals = []

    def deliver(node, message, context):  # the server calls node 0 by node 1's party id
        record = message.content.config_records.get("fedprivacy.submodel")
        if node == nodes[0] and record is not None:
            record["party"] = parties[1]

    def answer(node, message, reply):
        if reply.has_error():
            refusals.append((node, reply.error.reason))
        return [reply]

    grid, model = _loopback(configs, deliver=deliver, answer=answer)
    result = SecureSubmodelWorkflow(model, SETTINGS, min_nodes=5, trust_store=trust).run_round(grid, 1)
    assert result.contributors == frozenset(parties[1:])  # node 0 refused its first message: a dropout
    assert refusals and refusals[0][0] == nodes[0]
    assert f"calls this node party {parties[1]}, its identity is party {parties[0]}" in refusals[0][1]


def test_identify_is_answered_only_by_a_node_with_an_identity(task_identity, tmp_path):
    configs, _, parties = _deployment(tmp_path, 3)
    node = sorted(configs)[0]
    grid, _ = _loopback(configs)
    ask = Message(RecordDict({IDENTIFY_RECORD: ConfigRecord({"round": 1})}), node, "train.fedprivacy_submodel")
    reply = grid.app(ask, grid.contexts[node])
    assert reply.content.config_records[IDENTIFY_RECORD]["party"] == parties[configs[node]["partition-id"]]
    bare = Context(run_id=7, node_id=node, node_config={"partition-id": 0}, state=RecordDict(), run_config={})
    assert "has no identity" in grid.app(ask, bare).error.reason
