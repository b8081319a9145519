"""The engine's clients on a local two-node Ray cluster give the same round as the in-process engine."""

from __future__ import annotations

import numpy as np
import pytest

from fedprivacy.accounting import replay
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.ldp import RRParameters
from fedprivacy.secagg import SecAggStep
from fedprivacy.submodel.demo import init_model, synthetic_workload
from fedprivacy.submodel.reference import ReferenceModel, ReferenceTrainer
from fedprivacy.submodel.client import DeviceState
from fedprivacy.submodel.engine import RoundDrops, run_round
from fedprivacy.submodel.settings import RoundSettings

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

CLIENTS, UNIVERSE, ITEMS, DIM = 8, 400, 12, 3


def _round(executor):
    workload = synthetic_workload(clients=CLIENTS, universe=UNIVERSE, items_per_user=ITEMS, seed=3)
    states = {c.client_id: DeviceState.new(ReferenceTrainer(c), RRParameters.preset(2)) for c in workload.clients}
    model = ReferenceModel(*init_model(np.arange(UNIVERSE, dtype=np.uint64), DIM, seed=3))
    drops = RoundDrops(psu={2: SecAggStep.SHARE}, upload={5: SecAggStep.INPUT})
    settings = RoundSettings(universe=UNIVERSE, max_set_size=ITEMS, dropout_fraction=0.25)
    outcome = run_round(states, model, settings, 0, drops, executor=executor,
                           random_source=lambda p: DeterministicRandomness(f"ray-{p}"))
    return outcome, model, states


@pytest.fixture(scope="module")
def two_node_cluster():
    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_a_round_on_a_two_node_ray_cluster_equals_the_in_process_engine(two_node_cluster):
    from fedprivacy.adapters.ray_executor import RayExecutor

    executor = RayExecutor(actors=2, batch=3)
    on_ray, ray_model, ray_states = _round(executor)
    assert len(set(executor.last_node_ids)) == 2  # one shard of clients on each node
    local, local_model, local_states = _round(None)
    assert on_ray.contributors == local.contributors and len(local.contributors) == CLIENTS - 2
    assert on_ray.exchanges == local.exchanges == 7
    assert np.array_equal(on_ray.result.union, local.result.union)
    assert all(np.array_equal(on_ray.chosen[p], local.chosen[p]) for p in local.chosen)
    assert all(np.array_equal(ray_model.table[r], local_model.table[r]) for r in local_model.table)
    assert np.array_equal(ray_model.head.flat(), local_model.head.flat())
    for party, state in local_states.items():  # the ledgers came back from the actors
        assert replay(ray_states[party].ledger).spent() == replay(state.ledger).spent()
        assert len(ray_states[party].ledger.events) == len(state.ledger.events) > 0
        assert (replay(state.ledger).spent() > 0) == (party != 2)  # 2 vanished in the PSU, before reporting


def test_simulate_with_executor_ray_reports_what_the_in_process_run_reports(two_node_cluster, capsys):
    import json

    from fedprivacy.cli import main

    argv = ["simulate", "--clients", "8", "--items", "20", "--universe", "300", "--rounds", "2", "--quiet", "--json"]
    reports = []
    for extra in (["--executor", "ray"], []):
        assert main(argv + extra) == 0
        reports.append(json.loads(capsys.readouterr().out))
    timeless = [[{k: v for k, v in row.items() if not k.endswith("_seconds")} for row in report["rounds"]]
                for report in reports]
    assert timeless[0] == timeless[1] and len(timeless[1]) == 3  # the initial model, then 2 rounds
    assert timeless[1][2]["test_auc"] != timeless[1][0]["test_auc"]  # the model was trained


def test_clients_with_identity_keys_are_not_sent_to_ray():
    from fedprivacy.submodel.engine import RoundDrops
    from fedprivacy.adapters.ray_executor import RayExecutor
    from fedprivacy.errors import InvalidParameters
    from fedprivacy.secagg import make_identities

    workload = synthetic_workload(clients=4, universe=UNIVERSE, items_per_user=ITEMS, seed=3)
    identities, trust = make_identities([c.client_id for c in workload.clients])
    states = {c.client_id: DeviceState.new(ReferenceTrainer(c), RRParameters.preset(2), identity=identities[c.client_id],
                                           trust=trust) for c in workload.clients}
    with pytest.raises(InvalidParameters, match="identity keys"):
        RayExecutor()(states, RoundDrops(), None)  # refused before Ray is even started
