"""The secure submodel round on Flower (flwr.simulation.run_simulation) equals the in-process engine.

Two simulated runs share one state directory: the first is a round with a node that fails just before
its masked upload; the second, with new ClientApp objects (a "restart" of every node), is charged on
top of the ledgers and memos the first left on disk.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("flwr")
pytest.importorskip("ray")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # Ray's note on accelerator variables

from flwr.app import ConfigRecord, Context, Error, Message, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flwr.simulation import run_simulation  # noqa: E402

from fedprivacy.accounting import replay  # noqa: E402
from fedprivacy.submodel.engine import RoundDrops, run_round  # noqa: E402
from fedprivacy.adapters.flower import SecureSubmodelClient, SecureSubmodelWorkflow  # noqa: E402
from fedprivacy.adapters.storage import read_ledger_file  # noqa: E402
from fedprivacy.hazmat.prg import DeterministicRandomness  # noqa: E402
from fedprivacy.ldp import RRParameters  # noqa: E402
from fedprivacy.secagg import SecAggStep  # noqa: E402
from fedprivacy.submodel.demo import init_model, synthetic_workload  # noqa: E402
from fedprivacy.submodel.client import DeviceState  # noqa: E402
from fedprivacy.submodel.reference import ReferenceTrainer, ReferenceModel  # noqa: E402
from fedprivacy.submodel.settings import RoundSettings  # noqa: E402

NODES, UNIVERSE, ITEMS, DIM, SEED = 6, 400, 30, 4, 11
DROPPING_PARTITION = 4
SETTINGS = RoundSettings(universe=UNIVERSE, max_set_size=ITEMS, dropout_fraction=0.34, min_choosers=2)


def _client_app(drop_partition: int | None, state_dir) -> ClientApp:
    """Reference trainers on the seeded workload; a query tells the server which partition a node holds
    (test bookkeeping only); ``drop_partition`` fails just before sending its masked upload."""

    def client_fn(context: Context) -> ReferenceTrainer:
        from fedprivacy.submodel.demo import synthetic_workload

        workload = synthetic_workload(clients=NODES, universe=UNIVERSE, items_per_user=ITEMS, seed=SEED)
        return ReferenceTrainer(workload.clients[int(context.node_config["partition-id"])])

    def drop_before_upload(message: Message, context: Context, call_next) -> Message:  # a function-specific mod
        from fedprivacy.secagg.messages import MaskedInput
        from fedprivacy.submodel.messages import Phase, PhaseMessage, decode_submodel_message

        reply = call_next(message, context)
        if int(context.node_config["partition-id"]) == drop_partition and reply.has_content():
            for data in reply.content["fedprivacy.submodel"]["messages"]:
                sent = decode_submodel_message(data)
                if isinstance(sent, PhaseMessage) and sent.phase is Phase.ROWS and isinstance(sent.payload, MaskedInput):
                    return Message(Error(code=2, reason="node lost before its upload"), reply_to=message)
        return reply

    app = ClientApp()

    @app.query("whoami")
    def whoami(message: Message, context: Context) -> Message:
        return Message(RecordDict({"who": ConfigRecord({"partition": int(context.node_config["partition-id"])})}),
                       reply_to=message)

    handler = SecureSubmodelClient(
        client_fn, state_dir=str(state_dir), random_source=lambda context, party, round_index: DeterministicRandomness(f"flower-{round_index}-{party}")
    )
    handler.register(app, mods=[drop_before_upload])
    return app


def _simulate(model: ReferenceModel, round_index: int, drop_partition: int | None, state_dir) -> dict:
    """One run: the partition of each node (asked first), then one secure round; returns what it saw."""
    seen: dict = {}
    workflow = SecureSubmodelWorkflow(model, SETTINGS, num_rounds=1, first_round=round_index, min_nodes=NODES)
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        nodes = workflow.wait_for_nodes(grid)
        asks = [Message(RecordDict({"q": ConfigRecord({})}), node, "query.whoami") for node in nodes]
        seen["partition"] = {m.metadata.src_node_id: int(m.content["who"]["partition"])
                             for m in grid.send_and_receive(asks, timeout=60)}
        seen["result"] = workflow.run_round(grid, round_index)
        seen["party"] = dict(workflow.parties)
        seen["exchanges"] = list(workflow.exchanges)

    run_simulation(
        server_app, _client_app(drop_partition, state_dir), num_supernodes=NODES,
        backend_config={"client_resources": {"num_cpus": 1}, "init_args": {"num_cpus": 2}},
    )
    assert "result" in seen, "the ServerApp did not finish its round"
    seen["partition_of_party"] = {seen["party"][node]: part for node, part in seen["partition"].items()}
    return seen


class _Party:  # the engine's view of a partition's trainer under this round's party id
    def __init__(self, trainer: ReferenceTrainer, party: int) -> None:
        self.trainer, self.client_id = trainer, party

    def index_set(self):
        return self.trainer.index_set()

    def train(self, row_ids, rows, dense):
        return self.trainer.train(row_ids, rows, dense)


def _model() -> ReferenceModel:
    return ReferenceModel(*init_model(np.arange(UNIVERSE, dtype=np.uint64), DIM, seed=SEED))


def _engine_round(model, states_by_partition, seen, round_index, drop_partition):
    workload = synthetic_workload(clients=NODES, universe=UNIVERSE, items_per_user=ITEMS, seed=SEED)
    states = {}
    for party, part in seen["partition_of_party"].items():
        kept = states_by_partition[part]
        states[party] = DeviceState(_Party(ReferenceTrainer(workload.clients[part]), party), kept.params, kept.ledger, kept.memo)
    drops = RoundDrops()
    if drop_partition is not None:
        dropped = next(p for p, part in seen["partition_of_party"].items() if part == drop_partition)
        drops = RoundDrops(upload={dropped: SecAggStep.INPUT})
    outcome = run_round(states, model, SETTINGS, round_index, drops,
                        random_source=lambda p: DeterministicRandomness(f"flower-{round_index}-{p}"))
    for party, part in seen["partition_of_party"].items():  # the memo object is replaced by the round
        states_by_partition[part] = states[party]
    return outcome


def _assert_same_model(flower: ReferenceModel, engine: ReferenceModel) -> None:
    worst = max(float(np.max(np.abs(flower.table[r] - engine.table[r]))) for r in engine.table)
    assert worst <= 1e-9
    assert np.max(np.abs(flower.head.flat() - engine.head.flat())) <= 1e-9


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("flower-state")
    flower_model, engine_model = _model(), _model()
    seen = _simulate(flower_model, 1, DROPPING_PARTITION, state_dir)
    params = RRParameters.preset(2)
    engine_states = {part: DeviceState.new(ReferenceTrainer(c), params) for part, c in
                     enumerate(synthetic_workload(clients=NODES, universe=UNIVERSE, items_per_user=ITEMS, seed=SEED).clients)}
    outcome = _engine_round(engine_model, engine_states, seen, 1, DROPPING_PARTITION)
    return state_dir, flower_model, engine_model, engine_states, seen, outcome


def test_flower_round_with_a_drop_equals_the_engine_and_charges_the_ledgers(first_run):
    state_dir, flower_model, engine_model, engine_states, seen, outcome = first_run
    result = seen["result"]
    dropped = next(p for p, part in seen["partition_of_party"].items() if part == DROPPING_PARTITION)
    assert sorted(result.chosen) == list(range(1, NODES + 1))  # every node reported its randomized set
    assert result.contributors == outcome.contributors == frozenset(range(1, NODES + 1)) - {dropped}
    assert np.array_equal(result.union, outcome.result.union)
    assert all(np.array_equal(result.chosen[p], outcome.chosen[p]) for p in result.chosen)
    _assert_same_model(flower_model, engine_model)
    assert seen["exchanges"] == [outcome.exchanges] == [7]  # both secure sums' setups share exchanges
    for part in range(NODES):  # every node was charged once, before its randomized set left
        ledger = read_ledger_file(state_dir / f"partition-{part}" / "ledger.jsonl")
        assert [e.kind for e in budget_events(ledger)] == ["release"] and ledger.client_id == f"client-{part + 1}"
        assert replay(ledger).spent() == replay(engine_states[part].ledger).spent() > 0
        assert (state_dir / f"partition-{part}" / "memo.bin").exists()


def test_after_a_restart_the_ledgers_and_memos_on_disk_carry_the_next_round(first_run):
    state_dir, flower_model, engine_model, engine_states, _, _ = first_run
    spent_before = {part: replay(read_ledger_file(state_dir / f"partition-{part}" / "ledger.jsonl")).spent()
                    for part in range(NODES)}
    seen = _simulate(flower_model, 2, None, state_dir)  # new ClientApp objects, new run, same directories
    outcome = _engine_round(engine_model, engine_states, seen, 2, None)
    assert seen["result"].contributors == outcome.contributors == frozenset(range(1, NODES + 1))
    _assert_same_model(flower_model, engine_model)
    for part in range(NODES):
        ledger = read_ledger_file(state_dir / f"partition-{part}" / "ledger.jsonl")
        assert [(e.kind, e.round_index) for e in budget_events(ledger)] == [("release", 1), ("release", 2)]
        spent = replay(ledger).spent()
        assert spent == replay(engine_states[part].ledger).spent()
        assert spent_before[part] < spent


# -- fast checks on a loopback Grid (no Ray): each message and the node's context go through Flower's
# -- protobuf encoding, the context is kept per node between messages, as a SuperNode does.

import uuid  # noqa: E402

from flwr.common.serde import context_from_proto, context_to_proto, message_from_proto, message_to_proto  # noqa: E402
from flwr.supercore.task_identity import TaskIdentity  # noqa: E402

from fedprivacy.adapters.flower import SubmodelRoundFailed, submodel_client_app  # noqa: E402
from fedprivacy.adapters.flower._submodel_state import LEDGER_RECORD, ROUND_RECORD, rr_parameters_from_config  # noqa: E402
from fedprivacy.accounting.ledger import parse_ledger  # noqa: E402
from fedprivacy.errors import InvalidParameters  # noqa: E402
from fedprivacy.submodel.messages import RowDownload, decode_submodel_message  # noqa: E402

from .helpers import budget_events


class LoopbackGrid(Grid):
    def __init__(self, app: ClientApp, node_configs: dict[int, dict], deliver=None, answer=None) -> None:
        self.app = app
        self.contexts = {n: Context(run_id=7, node_id=n, node_config=c, state=RecordDict(), run_config={})
                         for n, c in node_configs.items()}
        self.deliver = deliver or (lambda node, message, context: None)  # test hook before delivery
        self.answer = answer or (lambda node, message, reply: [reply])  # test hook: what goes back
        self.replies: dict[str, list[Message]] = {}

    def set_run(self, run) -> None:
        pass

    @property
    def run(self):
        return None

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self):
        return list(self.contexts)

    def push_messages(self, messages):
        ids = []
        for message in messages:
            message.metadata.__dict__["_message_id"] = uuid.uuid4().hex
            ids.append(message.metadata.message_id)
            node = message.metadata.dst_node_id
            delivered = message_from_proto(message_to_proto(message))
            context = context_from_proto(context_to_proto(self.contexts[node]))
            self.deliver(node, delivered, context)
            reply = self.app(delivered, context)
            self.contexts[node] = context
            for item in self.answer(node, delivered, reply):
                item.metadata.__dict__["_message_id"] = uuid.uuid4().hex
                self.replies.setdefault(message.metadata.message_id, []).append(message_from_proto(message_to_proto(item)))
        return ids

    def pull_messages(self, message_ids):
        return [reply for i in message_ids for reply in self.replies.pop(i, [])]

    def send_and_receive(self, messages, *, timeout=None):
        return self.pull_messages(self.push_messages(messages))


@pytest.fixture
def task_identity(monkeypatch):
    for name, value in (("_run_id", 7), ("_node_id", 0), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, name, value)


def _loopback(configs: dict[int, dict], **hooks) -> tuple[LoopbackGrid, ReferenceModel]:
    def client_fn(context: Context) -> ReferenceTrainer:
        workload = synthetic_workload(clients=len(configs), universe=UNIVERSE, items_per_user=ITEMS, seed=SEED)
        return ReferenceTrainer(workload.clients[int(context.node_config["partition-id"])])

    return LoopbackGrid(submodel_client_app(client_fn), configs, **hooks), _model()


def _configs(count: int, extra: dict[int, dict] | None = None) -> dict[int, dict]:
    extra = extra or {}
    return {(1 << 63) + 1000 * i: {"partition-id": i, "num-partitions": count, **extra.get(i, {})} for i in range(count)}


def test_without_a_state_dir_ledger_and_memo_live_in_context_state_and_keys_do_not_outlast_the_round(task_identity):
    configs = _configs(4, {1: {"fedprivacy-cpp": 3}, 2: {"fedprivacy-epsilon": 2.0, "fedprivacy-epsilon-1": 1.0}})
    grid, model = _loopback(configs)
    workflow = SecureSubmodelWorkflow(model, SETTINGS, num_rounds=2, min_nodes=4)
    workflow(grid, Context(run_id=7, node_id=0, node_config={}, state=RecordDict(), run_config={}))
    assert [len(r.contributors) for r in workflow.results] == [4, 4]
    expected = [RRParameters.preset(2), RRParameters.preset(3), RRParameters.from_epsilons(2.0, 1.0), RRParameters.preset(2)]
    for node, context in grid.contexts.items():
        assert ROUND_RECORD not in context.state  # the round's keys and shares are gone once it completed
        record = context.state[LEDGER_RECORD]
        ledger = parse_ledger(list(record["lines"]))
        part = configs[node]["partition-id"]
        assert ledger.client_id == f"client-{part + 1}" and isinstance(record["memo"], bytes)
        assert [(e.kind, e.round_index, e.parameters) for e in budget_events(ledger)] == \
            [("release", r, expected[part].as_strings()) for r in (1, 2)]


def test_a_node_restarted_mid_round_answers_with_an_error_and_is_a_dropout(task_identity):
    restarted = (1 << 63) + 1000 * 2

    def deliver(node, message, context):
        payloads = message.content["fedprivacy.submodel"]["messages"]
        if node == restarted and isinstance(decode_submodel_message(payloads[0]), RowDownload):
            context.state = RecordDict()  # the node came back without its round in memory

    grid, model = _loopback(_configs(5), deliver=deliver)
    result = SecureSubmodelWorkflow(model, SETTINGS, min_nodes=5).run_round(grid, 1)
    assert sorted(result.chosen) == [1, 2, 3, 4, 5] and result.contributors == frozenset({1, 2, 4, 5})  # party 3


def test_repeated_misrouted_and_forged_replies_are_ignored(task_identity):
    nodes = sorted(_configs(6))

    def answer(node, message, reply):
        if node == nodes[0]:  # every reply twice: the repeat is dropped, the node stays in
            return [reply, reply]
        if node == nodes[1] and reply.has_content():  # speaks as party 3 (node 2): its messages are refused
            record = reply.content["fedprivacy.submodel"]
            return [Message(RecordDict({"fedprivacy.submodel": ConfigRecord(
                {"round": record["round"], "party": 3, "messages": list(record["messages"])})}), reply_to=message)]
        if node == nodes[3]:  # its reply shows up as sent by another node: refused
            reply.metadata.__dict__["_src_node_id"] = nodes[4]
        return [reply]

    grid, model = _loopback(_configs(6), answer=answer)
    result = SecureSubmodelWorkflow(model, SETTINGS, min_nodes=6).run_round(grid, 1)
    assert result.contributors == frozenset({1, 3, 5, 6})  # parties of nodes 0, 2, 4, 5
    assert not result.ignored  # nothing misplaced ever reached the round's server


def test_too_many_failed_nodes_fail_the_round_with_a_clear_error_and_leave_the_model_untouched(task_identity):
    nodes = sorted(_configs(4))

    def answer(node, message, reply):
        if node in nodes[1:] and isinstance(decode_submodel_message(
                message.content["fedprivacy.submodel"]["messages"][0]), RowDownload):
            return [Message(Error(code=2, reason="out of memory"), reply_to=message)]
        return [reply]

    grid, model = _loopback(_configs(4), answer=answer)
    before = {r: v.copy() for r, v in model.table.items()}
    with pytest.raises(SubmodelRoundFailed, match="round aborted at"):
        SecureSubmodelWorkflow(model, SETTINGS, min_nodes=4).run_round(grid, 1)
    assert all(np.array_equal(before[r], model.table[r]) for r in before)


def test_randomized_response_settings_come_from_the_node_config_then_the_run_config():
    assert rr_parameters_from_config({}, {}) == RRParameters.preset(2)
    assert rr_parameters_from_config({}, {"fedprivacy-cpp": 4}) == RRParameters.preset(4)
    assert rr_parameters_from_config({"fedprivacy-cpp": "3"}, {"fedprivacy-cpp": 4}) == RRParameters.preset(3)
    p = {"fedprivacy-p1": "3/4", "fedprivacy-p2": "1/4", "fedprivacy-p3": "0.75", "fedprivacy-p4": "0.25"}
    assert rr_parameters_from_config(p, {}) == RRParameters("3/4", "1/4", "3/4", "1/4")
    assert rr_parameters_from_config({"fedprivacy-epsilon": 3}, {}) == RRParameters.from_epsilons(3.0)
    for bad in ({"fedprivacy-cpp": 2, "fedprivacy-epsilon": 1.0}, {"fedprivacy-p1": "1/2"}, {"fedprivacy-epsilon-1": 1.0},
                {"fedprivacy-cpp": 9}):
        with pytest.raises(InvalidParameters):
            rr_parameters_from_config(bad, {})


def test_readme_flower_example_runs_on_a_loopback_grid(task_identity, monkeypatch):
    from pathlib import Path
    import re

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    models = re.search(r"## Plugging in your own model\n.*?```python\n(.*?)```", text, re.S).group(1)
    flower = re.search(r"## Secure submodel learning on Flower\n.*?```python\n(.*?)```", text, re.S).group(1)
    server_code, client_code = flower.split("# client_app.py")
    namespace: dict = {}
    exec(compile(models.split("rng = ")[0], "README.md", "exec"), namespace)  # MyServer, MyClient
    server_ns, client_ns = dict(namespace), dict(namespace)
    exec(compile(server_code, "README.md", "exec"), server_ns)
    exec(compile(client_code, "README.md", "exec"), client_ns)
    grid = LoopbackGrid(client_ns["app"], _configs(8))
    captured, original = [], SecureSubmodelWorkflow.run_round
    monkeypatch.setattr(SecureSubmodelWorkflow, "run_round",
                        lambda self, *args, **kwargs: captured.append((self, original(self, *args, **kwargs))) or captured[-1][1])
    server_ns["main"](grid, Context(run_id=7, node_id=0, node_config={}, state=RecordDict(), run_config={}))
    (workflow, result), = captured
    assert result.contributors == frozenset(range(1, 9)) and round(float(workflow.model.bias[0]), 6) == 0.1


def test_a_ddp_round_through_flower_charges_update_events_and_obeys_each_nodes_own_noise(task_identity):
    from fedprivacy.accounting import UpdateEvent
    from fedprivacy.ddp import DDPSettings

    settings = RoundSettings(universe=UNIVERSE, max_set_size=ITEMS, dropout_fraction=0.34, min_choosers=2, max_samples=4,
                             ddp=DDPSettings(4.0, 0.5, 1 << 12))
    configs = _configs(4, {1: {"fedprivacy-ddp-min-noise-multiplier": 2.0, "fedprivacy-ddp-delta": 1e-7}})
    grid, model = _loopback(configs)
    workflow = SecureSubmodelWorkflow(model, settings, num_rounds=1, min_nodes=4)
    workflow(grid, Context(run_id=7, node_id=0, node_config={}, state=RecordDict(), run_config={}))
    assert len(workflow.results[0].contributors) == 4
    variances = {}
    for node, context in grid.contexts.items():
        ledger = parse_ledger(list(context.state[LEDGER_RECORD]["lines"]))
        updates = [e for e in ledger.events if isinstance(e, UpdateEvent)]
        assert [e.kind for e in updates] == ["update-release"]
        variances[configs[node]["partition-id"]] = (updates[0].row_variance, updates[0].delta)
    assert variances[1][0] >= 15 * variances[0][0] and variances[1][1] == 1e-7  # (2 / 0.5)^2 = 16, rounded up
    assert variances[0][1] == 1e-6


def test_a_node_that_requires_ddp_refuses_a_round_without_it(task_identity):
    configs = _configs(4, {2: {"fedprivacy-ddp-required": True}})
    grid, model = _loopback(configs)
    result = SecureSubmodelWorkflow(model, SETTINGS, min_nodes=4).run_round(grid, 1)
    assert 3 not in result.contributors and len(result.contributors) == 3


def test_a_tampered_stored_round_makes_the_node_fail_the_round_with_a_typed_error(task_identity):
    """The round's snapshot in ``context.state`` is changed before the union arrives: the node answers
    with an error naming DecodeError, drops the round (no record left, nothing released: its ledger
    is as before), and the round completes without it."""
    from fedprivacy.adapters.flower._submodel_state import ROUND_RECORD as RECORD
    from fedprivacy.submodel.messages import UnionBroadcast

    victim = (1 << 63) + 1000 * 2
    seen: dict = {}

    def deliver(node, message, context):
        payloads = message.content["fedprivacy.submodel"]["messages"]
        if node == victim and isinstance(decode_submodel_message(payloads[0]), UnionBroadcast):
            seen["lines"] = list(context.state[LEDGER_RECORD]["lines"])
            record = context.state[RECORD]
            data = bytearray(record["client"])
            data[11] = 0xC8  # the stage byte (after the header and the party id): no such stage
            record["client"] = bytes(data)

    def answer(node, message, reply):
        if node == victim and reply.has_error():
            seen["error"] = reply.error.reason
        return [reply]

    grid, model = _loopback(_configs(5), deliver=deliver, answer=answer)
    result = SecureSubmodelWorkflow(model, SETTINGS, min_nodes=5).run_round(grid, 1)
    assert seen["error"].startswith("DecodeError")
    assert sorted(result.chosen) == [1, 2, 4, 5] and result.contributors == frozenset({1, 2, 4, 5})  # party 3 is out
    context = grid.contexts[victim]
    assert RECORD not in context.state  # no half-kept round
    assert list(context.state[LEDGER_RECORD]["lines"]) == seen["lines"]  # nothing released after the tampering


def test_the_workflow_sizes_each_rounds_first_psu_table_from_the_last_rounds_union(task_identity):
    """protocols/submodel/spec.md, "First PSU table": no history, the ceiling (4 nodes x 30); then
    ceil(1.25 x the last union), the estimate replaced after every completed round."""
    import math

    from fedprivacy.submodel.server import PSU_HEADROOM

    grid, model = _loopback(_configs(4))
    workflow = SecureSubmodelWorkflow(model, SETTINGS, num_rounds=3, min_nodes=4)
    workflow(grid, Context(run_id=7, node_id=0, node_config={}, state=RecordDict(), run_config={}))
    first_bounds = [r.psu_bounds[0] for r in workflow.results]
    unions = [r.union.shape[0] for r in workflow.results]
    assert first_bounds[0] == 4 * ITEMS
    assert first_bounds[1:] == [min(4 * ITEMS, math.ceil(PSU_HEADROOM * u)) for u in unions[:-1]]
    assert first_bounds[1] < first_bounds[0] and workflow.union_estimate == unions[-1]
    seeded = SecureSubmodelWorkflow(model, SETTINGS, num_rounds=1, first_round=4, min_nodes=4, union_estimate=50)
    seeded(grid, Context(run_id=7, node_id=0, node_config={}, state=RecordDict(), run_config={}))
    assert seeded.results[0].psu_bounds[0] == math.ceil(PSU_HEADROOM * 50)
