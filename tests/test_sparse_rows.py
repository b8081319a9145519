"""Sparse per-row neighbourhoods: a chooser masks a row with its graph neighbours that chose it.

protocols/submodel/spec.md, "Sparse rows"; the connectivity bound is claim submodel/2."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedprivacy.errors import InvalidParameters
from fedprivacy.hazmat.field import Modulus
from fedprivacy.secagg import (
    DropoutSchedule,
    SecAggStep,
    RowPlan,
    SecAggConfig,
    run_secagg_round,
)
from fedprivacy.secagg.graph import all_neighbourhoods, ring_order
from fedprivacy.secagg.rowgraph import (
    exact_disconnection_probability,
    log_disconnection_bound,
    row_graph_degree,
    row_graph_survivors,
)
from fedprivacy.secagg.rows import sparse_row_peel

from .helpers import PROTOCOL_POLICY
from .test_rows import _inputs, _plain_rows

SESSION = b"fedprivacy sparse row aggregation tests"


def _draw_plan(data, n: int, rows: int):
    ids = tuple(range(1, n + 1))
    union = np.array(sorted(data.draw(st.sets(st.integers(0, 2**40), min_size=1, max_size=rows))), dtype=np.uint64)
    chosen = {p: np.array(sorted(data.draw(st.sets(st.sampled_from(union.tolist())))), dtype=np.uint64) for p in ids}
    return ids, union, chosen


@settings(max_examples=40)
@given(st.data())
def test_a_sparse_plan_pairs_each_chooser_with_exactly_its_neighbours_that_chose_the_row(data):
    n = data.draw(st.integers(5, 16))
    k = data.draw(st.sampled_from([k for k in range(2, n - 1, 2)]))
    ids, union, chosen = _draw_plan(data, n, 20)
    config = SecAggConfig(ids, 3, Modulus.U64, k, 2, SESSION)
    neighbours = all_neighbourhoods(config)
    plan = RowPlan(union, 3, chosen, ring=ring_order(config), neighbours=k)
    for party in ids:
        shared = plan.for_client(party).shared
        expected = {peer: np.intersect1d(chosen[party], chosen[peer]) for peer in sorted(neighbours[party])}
        expected = {peer: rows for peer, rows in expected.items() if rows.size}
        assert sorted(shared) == sorted(expected)
        for peer, rows in expected.items():
            assert shared[peer].tolist() == rows.tolist()
        assert set(plan.partners(party).tolist()) == set(expected)


@settings(max_examples=40)
@given(st.data())
def test_the_peel_keeps_the_largest_set_where_every_chooser_has_enough_neighbours(data):
    n = data.draw(st.integers(5, 14))
    k = data.draw(st.sampled_from([k for k in range(2, n - 1, 2)]))
    need = data.draw(st.integers(1, 3))
    ids, _, chosen = _draw_plan(data, n, 12)
    config = SecAggConfig(ids, 3, Modulus.U64, k, 2, SESSION)
    neighbours = all_neighbourhoods(config)
    kept = sparse_row_peel(chosen, ring_order(config), k, need)
    # Reference: drop one starved (party, row) pair at a time until none is left.
    pairs = {(p, int(r)) for p, rows in chosen.items() for r in rows}
    while True:
        starved = {(p, r) for p, r in pairs if sum((q, r) in pairs for q in neighbours[p]) < need}
        if not starved:
            break
        pairs -= starved
    assert {(p, int(r)) for p, rows in kept.items() for r in rows} == pairs
    assert all(bool(np.all(np.diff(rows.astype(np.int64)) > 0)) for rows in kept.values())


@settings(max_examples=30)
@given(st.data())
def test_sparse_per_row_sums_over_surviving_choosers(data):
    n = data.draw(st.integers(6, 12))
    k = 4
    ids, union, chosen = _draw_plan(data, n, 15)
    width = data.draw(st.integers(1, 5))
    modulus = data.draw(st.sampled_from(list(Modulus)))
    config = SecAggConfig(ids, 1, modulus, k, 2, SESSION)
    plan = RowPlan(union, width, chosen, ring=ring_order(config), neighbours=k)
    config = SecAggConfig(ids, plan.dim, modulus, k, 2, SESSION)
    plan = RowPlan(union, width, chosen, ring=ring_order(config), neighbours=k)  # the dim changes the ring
    drop = data.draw(st.sampled_from(ids))
    stage = data.draw(st.sampled_from([SecAggStep.INPUT, SecAggStep.UNMASK]))
    inputs = _inputs(plan, modulus, data.draw(st.integers(0, 1000)))
    report = run_secagg_round(config, inputs, DropoutSchedule({drop: stage}), row_plan=plan, policy=PROTOCOL_POLICY)
    assert report.aborted is None and not report.client_errors
    survivors = {p for p in ids if p != drop or stage is SecAggStep.UNMASK}
    assert report.result.reshape(-1, width).astype(object).tolist() == _plain_rows(plan, inputs, survivors, modulus)


def test_a_sparse_plan_needs_every_party_on_the_ring():
    config = SecAggConfig((1, 2, 3, 4, 5, 6), 3, Modulus.U64, 2, 2, SESSION)
    with pytest.raises(InvalidParameters):
        RowPlan([1, 2], 3, {1: [1], 9: [2]}, ring=ring_order(config), neighbours=2)


def _connected(members, n: int, k: int) -> bool:
    """Breadth-first search over H(n, k) restricted to ``members`` (ring positions)."""
    members = set(members)
    seen, frontier = set(), [min(members)]
    while frontier:
        u = frontier.pop()
        if u in seen:
            continue
        seen.add(u)
        frontier += [v for v in members if v not in seen and min((u - v) % n, (v - u) % n) <= k // 2]
    return seen == members


def test_the_connectivity_bound_is_exact_on_small_rings_and_picks_the_smallest_degree():
    import itertools

    n, k = 12, 4
    ring = range(n)
    for h in range(2, 7):
        disconnected = 0
        subsets = list(itertools.combinations(ring, h))
        for members in subsets:
            disconnected += not _connected(members, n, k)
        exact = exact_disconnection_probability(n, k, h)
        assert exact * len(subsets) == disconnected
        assert math.exp(log_disconnection_bound(n, k, h)) >= float(exact) - 1e-12
    k = row_graph_degree(2000, row_graph_survivors(2000, 0.05))
    assert log_disconnection_bound(2000, k, 100) < -40 * math.log(2) <= log_disconnection_bound(2000, k - 2, 100)
    assert row_graph_degree(30, 2) == 29  # two survivors: no sparse degree qualifies, the full graph


def _sparse_round(policy, params, settings, drops=None, clients=20):
    from fedprivacy.hazmat.prg import DeterministicRandomness
    from fedprivacy.submodel.demo import init_model, synthetic_workload
    from fedprivacy.submodel.messages import RoundStart, decode_submodel_message
    from fedprivacy.submodel.reference import ReferenceModel, ReferenceTrainer
    from fedprivacy.submodel.client import DeviceState
    from fedprivacy.submodel.engine import run_round

    workload = synthetic_workload(clients=clients, universe=3000, items_per_user=80, seed=3)
    states = {c.client_id: DeviceState.new(ReferenceTrainer(c), params, policy=policy) for c in workload.clients}
    table, head = init_model(np.arange(3000, dtype=np.uint64), 6, seed=1)
    configs = []

    def observe(session, sender, recipient, data):
        if session == "round" and sender == 0:
            message = decode_submodel_message(data)
            if isinstance(message, RoundStart):
                configs.append(message.rows_config)

    server = ReferenceModel(table, head)
    outcome = run_round(states, server, settings, 0, drops, observer=observe,
                           random_source=lambda p: DeterministicRandomness(f"sparse-{p}"))
    return workload, table, head, server, outcome, configs


def test_a_sparse_round_without_randomization_equals_plaintext_fedsubavg():
    from fedprivacy.ldp import RRParameters
    from fedprivacy.policy import weakened_policy
    from fedprivacy.submodel.demo import init_model, plaintext_round
    from fedprivacy.submodel.settings import RoundSettings

    exact = RRParameters("1", "0", "1", "0", allow_insecure=True)
    settings = RoundSettings(universe=3000, min_choosers=1, sparse_rows_above=10, row_survivor_fraction=0.8)
    workload, table, _, server, outcome, configs = _sparse_round(weakened_policy(), exact, settings)
    assert configs and all(0 < c.neighbours < c.clients - 1 for c in configs)  # sparse: k = 6 of 19
    plain_table, plain_head = init_model(np.arange(3000, dtype=np.uint64), 6, seed=1)
    plain_head = plaintext_round(workload.clients, plain_table, plain_head)
    assert outcome.participants == 20 and outcome.thin_rows == 0 and not outcome.client_errors
    assert max(float(np.max(np.abs(table[r] - plain_table[r]))) for r in table) < 1e-9
    assert np.allclose(server.head.flat(), plain_head.flat(), atol=1e-9)


def test_a_sparse_cpp2_round_with_dropouts_completes_under_a_policy_that_accepts_its_degree():
    from fedprivacy.ldp import RRParameters
    from fedprivacy.policy import ClientPolicy
    from fedprivacy.secagg import SecAggStep
    from fedprivacy.submodel.engine import RoundDrops
    from fedprivacy.submodel.settings import RoundSettings

    settings = RoundSettings(universe=3000, sparse_rows_above=10, row_survivor_fraction=0.8, dropout_fraction=0.1)
    drops = RoundDrops(upload={3: SecAggStep.INPUT, 4: SecAggStep.UNMASK})
    policy = ClientPolicy(row_survivor_fraction=0.8)
    *_, outcome, configs = _sparse_round(policy, RRParameters.preset(2), settings, drops)
    assert configs[0].neighbours < configs[0].clients - 1 and not outcome.client_errors
    assert outcome.participants == 19 and 3 not in outcome.contributors and outcome.rows_updated > 0
    # The default policy (5% of 20 parties: a row of 2 survivors) accepts no sparse degree: every client
    # refuses the round start, and the round aborts before anything is released.
    from fedprivacy.errors import RoundAborted

    with pytest.raises(RoundAborted):
        _sparse_round(ClientPolicy(), RRParameters.preset(2), settings, drops)


def test_a_client_on_a_sparse_graph_refuses_a_plan_that_names_a_partner_outside_its_neighbours():
    # The server cannot choose who masks a row with a client: the graph comes from the config digest,
    # and a plan naming any other party of the sum (one the wire can name) is refused before masking.
    from fedprivacy.errors import RemoteProtocolError
    from fedprivacy.hazmat.prg import DeterministicRandomness
    from fedprivacy.ldp import RRParameters
    from fedprivacy.policy import ClientPolicy
    from fedprivacy.secagg.rows import ClientRowPlan
    from fedprivacy.submodel.client import DeviceState, SubmodelRoundClient
    from fedprivacy.submodel.demo import init_model, synthetic_workload
    from fedprivacy.submodel.messages import RowDownload, decode_submodel_message
    from fedprivacy.submodel.reference import ReferenceModel, ReferenceTrainer
    from fedprivacy.submodel.server import SubmodelRoundServer
    from fedprivacy.submodel.settings import RoundSettings
    from fedprivacy.submodel.stages import RoundClientStage, RoundServerStage

    def wire(message):
        return decode_submodel_message(message.to_bytes())

    workload = synthetic_workload(clients=20, universe=3000, items_per_user=80, seed=3)
    policy = ClientPolicy(row_survivor_fraction=0.8)
    states = {c.client_id: DeviceState.new(ReferenceTrainer(c), RRParameters.preset(2), policy=policy)
              for c in workload.clients}
    settings = RoundSettings(universe=3000, sparse_rows_above=10, row_survivor_fraction=0.8)
    server = SubmodelRoundServer(ReferenceModel(*init_model(np.arange(3000, dtype=np.uint64), 6, seed=1)),
                                 settings, sorted(states), 0)
    clients = {p: SubmodelRoundClient(s, p, random_bytes=DeterministicRandomness(f"sparse-plan-{p}"))
               for p, s in states.items()}
    outbound = server.start()
    while server.stage is not RoundServerStage.AGGREGATING:
        for item in outbound:
            for reply in clients[item.recipient].receive(wire(item.message)):
                server.receive(wire(reply))
        outbound = server.close_stage()
    download = wire(outbound[0].message)
    assert isinstance(download, RowDownload) and not download.config.full_graph
    victim = download.recipient
    neighbours = all_neighbourhoods(download.config)[victim]
    assert set(download.plan.shared) <= neighbours  # the honest plan: neighbours only
    outsider = min(set(ring_order(download.config)) - neighbours - {victim})
    shared = {**download.plan.shared, outsider: download.plan.rows}
    plan = ClientRowPlan(victim, download.plan.width, download.plan.rows, shared)
    forged = RowDownload(victim, 0, download.config, plan, download.dense_rows, download.rows, download.dense)
    with pytest.raises(RemoteProtocolError, match="outside this client's neighbours"):
        clients[victim].receive(wire(forged))
    assert clients[victim].stage is RoundClientStage.ABORTED
    other = wire(outbound[1].message)  # the same server's honest download to another client is taken
    assert clients[other.recipient].receive(other)


def test_a_flower_node_sets_its_row_survivor_floor_in_its_node_config():
    from fedprivacy.adapters.flower._submodel_state import policy_from_config

    assert policy_from_config({}).row_survivor_fraction == 0.05
    assert policy_from_config({"fedprivacy-row-survivor-fraction": 0.2}).row_survivor_fraction == 0.2
