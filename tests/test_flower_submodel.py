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
from fedprivacy.adapters.engine import RoundDrops, run_round  # noqa: E402
from fedprivacy.adapters.flower import SecureSubmodelClient, SecureSubmodelWorkflow  # noqa: E402
from fedprivacy.adapters.flower._submodel_state import ResumableRandomness  # noqa: E402
from fedprivacy.adapters.storage import read_ledger_file  # noqa: E402
from fedprivacy.hazmat.prg import DeterministicRandomness  # noqa: E402
from fedprivacy.ldp import RRParameters  # noqa: E402
from fedprivacy.secagg import DropStage  # noqa: E402
from fedprivacy.submodel import init_model, synthetic_workload  # noqa: E402
from fedprivacy.submodel.client import ClientState  # noqa: E402
from fedprivacy.submodel.reference import ReferenceClient, ReferenceServer  # noqa: E402
from fedprivacy.submodel.settings import RoundSettings  # noqa: E402

NODES, UNIVERSE, ITEMS, DIM, SEED = 6, 400, 30, 4, 11
DROPPING_PARTITION = 4
SETTINGS = RoundSettings(universe=UNIVERSE, max_set_size=ITEMS, dropout_fraction=0.34, min_choosers=2)


def _client_app(drop_partition: int | None, state_dir) -> ClientApp:
    """Reference trainers on the seeded workload; a query tells the server which partition a node holds
    (test bookkeeping only); ``drop_partition`` fails just before sending its masked upload."""

    def client_fn(context: Context) -> ReferenceClient:
        from fedprivacy.submodel import synthetic_workload

        workload = synthetic_workload(clients=NODES, universe=UNIVERSE, items_per_user=ITEMS, seed=SEED)
        return ReferenceClient(workload.clients[int(context.node_config["partition-id"])])

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
        client_fn, state_dir=str(state_dir), random_source=lambda context, party, round_index: ResumableRandomness(f"flower-{round_index}-{party}")
    )
    handler.register(app, mods=[drop_before_upload])
    return app


def _simulate(model: ReferenceServer, round_index: int, drop_partition: int | None, state_dir) -> dict:
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

    run_simulation(
        server_app, _client_app(drop_partition, state_dir), num_supernodes=NODES,
        backend_config={"client_resources": {"num_cpus": 1}, "init_args": {"num_cpus": 2}},
    )
    assert "result" in seen, "the ServerApp did not finish its round"
    seen["partition_of_party"] = {seen["party"][node]: part for node, part in seen["partition"].items()}
    return seen


class _Party:  # the engine's view of a partition's trainer under this round's party id
    def __init__(self, trainer: ReferenceClient, party: int) -> None:
        self.trainer, self.client_id = trainer, party

    def index_set(self):
        return self.trainer.index_set()

    def train(self, row_ids, rows, dense):
        return self.trainer.train(row_ids, rows, dense)


def _model() -> ReferenceServer:
    return ReferenceServer(*init_model(np.arange(UNIVERSE, dtype=np.uint64), DIM, seed=SEED))


def _engine_round(model, states_by_partition, seen, round_index, drop_partition):
    workload = synthetic_workload(clients=NODES, universe=UNIVERSE, items_per_user=ITEMS, seed=SEED)
    states = {}
    for party, part in seen["partition_of_party"].items():
        kept = states_by_partition[part]
        states[party] = ClientState(_Party(ReferenceClient(workload.clients[part]), party), kept.params, kept.ledger, kept.memo)
    drops = RoundDrops()
    if drop_partition is not None:
        dropped = next(p for p, part in seen["partition_of_party"].items() if part == drop_partition)
        drops = RoundDrops(upload={dropped: DropStage.INPUT})
    outcome = run_round(states, model, SETTINGS, round_index, drops,
                        random_source=lambda p: DeterministicRandomness(f"flower-{round_index}-{p}"))
    for party, part in seen["partition_of_party"].items():  # the memo object is replaced by the round
        states_by_partition[part] = states[party]
    return outcome


def _assert_same_model(flower: ReferenceServer, engine: ReferenceServer) -> None:
    worst = max(float(np.max(np.abs(flower.table[r] - engine.table[r]))) for r in engine.table)
    assert worst <= 1e-9
    assert np.max(np.abs(flower.head.flat() - engine.head.flat())) <= 1e-9


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("flower-state")
    flower_model, engine_model = _model(), _model()
    seen = _simulate(flower_model, 1, DROPPING_PARTITION, state_dir)
    params = RRParameters.preset(2)
    engine_states = {part: ClientState.new(ReferenceClient(c), params) for part, c in
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
    for part in range(NODES):  # every node was charged once, before its randomized set left
        ledger = read_ledger_file(state_dir / f"partition-{part}" / "ledger.jsonl")
        assert [e.kind for e in ledger.events] == ["release"] and ledger.client_id == f"client-{part + 1}"
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
        assert [(e.kind, e.round_index) for e in ledger.events] == [("release", 1), ("release", 2)]
        spent = replay(ledger).spent()
        assert spent == replay(engine_states[part].ledger).spent()
        assert spent_before[part] < spent
