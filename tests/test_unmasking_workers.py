"""The server's unmasking on worker processes (:mod:`fedprivacy.secagg.unmasking`).

The masks taken out are a sum of independent terms: split over any number of chunks, run by any
workers, the result must be the serial one bit for bit (plain vectors and per-row sums, every
modulus, dropouts at every step, malicious mode), and a worker that fails must abort the round with
:class:`WorkerFailed`, never leave a wrong sum. Most tests use an in-process map that pickles every
chunk and partial both ways (what a process pool does, without the processes); one module-level
pool of two real worker processes covers the real thing.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
from hypothesis import given, strategies as st

from fedprivacy.errors import InvalidParameters, RoundAborted, WorkerFailed
from fedprivacy.hazmat.field import Modulus, dtype_of, modulus_value
from fedprivacy.hazmat.kex import generate_keypair
from fedprivacy.hazmat.prg import DeterministicRandomness, MaskExpander
from fedprivacy.ldp import RRParameters
from fedprivacy.secagg import (
    DropoutSchedule,
    RowPlan,
    SecAggConfig,
    SecAggServer,
    SecAggStep,
    UnmaskingWorkers,
    make_identities,
    run_secagg_round,
)
from fedprivacy.secagg.masking import pair_mask_key
from fedprivacy.secagg.stages import ServerStage
from fedprivacy.secagg.unmasking import DropoutMasks, plan_chunks, remove_masks, unmask_chunk
from fedprivacy.submodel.client import DeviceState
from fedprivacy.submodel.demo import init_model, synthetic_workload
from fedprivacy.submodel.engine import RoundDrops, run_round
from fedprivacy.submodel.reference import ReferenceModel, ReferenceTrainer
from fedprivacy.submodel.settings import RoundSettings

from .helpers import PROTOCOL_POLICY, SESSION, config, plain_sum, random_inputs


def _pickled_map(function, chunks):
    """A process pool's map without the processes: every chunk and every partial goes through pickle."""
    for chunk in chunks:
        yield pickle.loads(pickle.dumps(function(pickle.loads(pickle.dumps(chunk)))))


def fake_workers(workers: int = 3, chunks_per_worker: int = 2) -> UnmaskingWorkers:
    return UnmaskingWorkers(_pickled_map, workers, chunks_per_worker)


@pytest.fixture(scope="module")
def pool():
    """Two real worker processes, started as a server would (spawn: fresh interpreters that inherit
    nothing of the test process)."""
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as executor:
        yield executor


# -- the sum itself ---------------------------------------------------------------------------------


def _keys(name: str, count: int) -> list[bytes]:
    source = DeterministicRandomness(name)
    return [source(16) for _ in range(count)]


def _keypairs(config: SecAggConfig, name: str) -> dict[int, tuple[bytes, bytes]]:
    source = DeterministicRandomness(name)
    return {party: generate_keypair(source) for party in config.party_ids}


def _canonical(modulus: Modulus, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)  # public test data
    return rng.integers(0, min(modulus_value(modulus), 1 << 63), count, dtype=np.uint64).astype(dtype_of(modulus))


def _dropouts(config, pairs, dropped, alive):
    return [DropoutMasks(d, pairs[d][0], tuple(alive), tuple(pairs[p][1] for p in alive)) for d in dropped]


@pytest.mark.parametrize("modulus", list(Modulus))
@pytest.mark.parametrize("workers,per_worker", [(1, 1), (2, 2), (3, 1), (5, 3)])
def test_a_plain_vectors_masks_split_over_chunks_are_the_serial_sum_bit_for_bit(modulus, workers, per_worker):
    cfg = config(range(1, 10), dim=1000, modulus=modulus, threshold=4)
    pairs = _keypairs(cfg, f"plain/{modulus.name}")
    alive, dropped = [1, 2, 4, 5, 7, 9], [3, 6, 8]
    self_keys = _keys(f"plain-self/{modulus.name}", len(alive))
    dropouts = _dropouts(cfg, pairs, dropped, alive)
    start = _canonical(modulus, cfg.dim, 1)
    serial, split = start.copy(), start.copy()
    remove_masks(cfg, serial, self_keys, dropouts)
    remove_masks(cfg, split, self_keys, dropouts, workers=fake_workers(workers, per_worker))
    assert np.array_equal(serial, split)
    # and both are the former serial path: every mask in one apply_many
    masks = [(key, True) for key in self_keys]
    from fedprivacy.hazmat.kex import agree

    for d in dropped:
        masks += [(pair_mask_key(cfg, agree(pairs[d][0], pairs[p][1]), d, p), p > d) for p in alive]
    former = start.copy()
    MaskExpander(modulus).apply_many(former, masks)
    assert np.array_equal(serial, former)


def _row_plan(seed: int, parties, width: int) -> tuple[RowPlan, int]:
    """A random plan over 60 rows, with party ``lonely`` choosing rows nobody else chose."""
    rng = np.random.default_rng(seed)  # public test data
    union = np.sort(rng.choice(1 << 40, 60, replace=False)).astype(np.uint64)
    lonely = parties[-1]
    chosen = {p: np.sort(rng.choice(union[:50], int(rng.integers(0, 20)), replace=False)) for p in parties[:-1]}
    chosen[lonely] = union[50:]
    return RowPlan(union, width, chosen), lonely


@pytest.mark.parametrize("modulus", list(Modulus))
def test_per_row_masks_split_over_chunks_are_the_row_unmaskers_sum_bit_for_bit(modulus):
    parties = list(range(1, 11))
    plan, lonely = _row_plan(5, parties, 3)
    cfg = config(parties, dim=plan.dim, modulus=modulus, threshold=4)
    pairs = _keypairs(cfg, f"rows/{modulus.name}")
    dropped = [2, 7, lonely]
    alive = [p for p in parties if p not in dropped]
    self_keys = _keys(f"rows-self/{modulus.name}", len(alive))
    start = _canonical(modulus, plan.dim, 2)
    # the former serial path: the plan's own unmasker
    former = start.copy()
    unmasker = plan.unmasker(modulus)
    for key, owner in zip(self_keys, alive):
        unmasker.remove_self_mask(owner, key)
    from fedprivacy.hazmat.kex import agree

    dropouts = []
    for d in dropped:
        sharing = [(p, where) for p, where in plan._shared_positions(d) if p in alive]
        keys = {p: pair_mask_key(cfg, agree(pairs[d][0], pairs[p][1]), d, p) for p, _ in sharing}
        unmasker.remove_pair_masks(d, keys, sharing)
        if sharing:
            offsets = np.cumsum([0] + [where.shape[0] for _, where in sharing])
            dropouts.append(DropoutMasks(d, pairs[d][0], tuple(p for p, _ in sharing), tuple(pairs[p][1] for p, _ in sharing),
                                         plan.chosen[d], plan.positions(d), offsets, np.concatenate([w for _, w in sharing])))
    unmasker.apply_to(former)
    assert not any(d.owner == lonely for d in dropouts)  # it shares no row: no pair mask to take out
    positions = [plan.positions(p) for p in alive]
    for workers in (None, fake_workers(1, 1), fake_workers(2, 2), fake_workers(4, 3)):
        got = start.copy()
        remove_masks(cfg, got, self_keys, dropouts, self_positions=positions, union=plan.union, width=plan.width,
                     workers=workers)
        assert np.array_equal(got, former), workers


@given(st.lists(st.integers(0, 1 << 30), max_size=40), st.integers(1, 9))
def test_chunks_partition_the_terms_and_balance_them(costs, count):
    groups = plan_chunks(costs, count)
    flat = sorted(at for group in groups for at in group)
    assert flat == list(range(len(costs)))
    assert len(groups) <= count and all(group and group == sorted(group) for group in groups)
    if costs:  # largest-first greedy: no group exceeds the mean by more than one term
        loads = [sum(costs[at] for at in group) for group in groups]
        assert max(loads) <= sum(costs) / min(count, len(costs)) + max(costs)
    assert plan_chunks(costs, count) == groups  # deterministic


# -- whole rounds -----------------------------------------------------------------------------------


@pytest.mark.parametrize("modulus", list(Modulus))
@pytest.mark.parametrize("full", [True, False])
def test_a_round_with_workers_and_dropouts_at_every_step_sums_exactly_the_survivors(modulus, full):
    cfg = SecAggConfig.create(list(range(1, 31)), 300, modulus, full_graph=full, dropout_fraction=0.2)
    assert cfg.full_graph is full
    drops = {2: SecAggStep.ADVERTISE, 5: SecAggStep.SHARE, 7: SecAggStep.INPUT, 11: SecAggStep.INPUT,
             12: SecAggStep.INPUT, 13: SecAggStep.UNMASK}
    inputs = random_inputs(cfg, seed=4)
    report = run_secagg_round(cfg, inputs, DropoutSchedule(drops), policy=PROTOCOL_POLICY, server_workers=fake_workers())
    assert report.aborted is None and not report.client_errors
    assert {7, 11, 12} <= report.shared_ids - report.input_ids
    assert [int(v) for v in report.result] == plain_sum(inputs, sorted(report.input_ids), modulus)


def test_a_per_row_round_with_a_dropout_sharing_no_row_sums_exactly_with_workers():
    parties = list(range(1, 11))
    plan, lonely = _row_plan(11, parties, 2)
    cfg = config(parties, dim=plan.dim, modulus=Modulus.U64, threshold=4)
    rng = np.random.default_rng(3)  # public test data
    inputs = {p: rng.integers(0, 1 << 63, rows.shape[0] * 2, dtype=np.uint64) for p, rows in plan.chosen.items()}
    drops = {3: SecAggStep.SHARE, lonely: SecAggStep.INPUT, 4: SecAggStep.INPUT, 6: SecAggStep.UNMASK}
    results = []
    for workers in (None, fake_workers(2, 2)):
        report = run_secagg_round(cfg, inputs, DropoutSchedule(drops), row_plan=plan, policy=PROTOCOL_POLICY,
                                  server_workers=workers)
        assert report.aborted is None and not report.client_errors
        assert {lonely, 4} <= report.shared_ids - report.input_ids
        results.append(report.result)
    expected = np.zeros((plan.union.shape[0], 2), dtype=np.uint64)
    for p in report.input_ids:
        np.add.at(expected, plan.positions(p), inputs[p].reshape(-1, 2))
    assert np.array_equal(results[0], expected.reshape(-1)) and np.array_equal(results[1], results[0])


def test_a_malicious_mode_round_sums_exactly_with_workers():
    cfg = SecAggConfig(tuple(range(1, 17)), 64, Modulus.P61, 8, 5, SESSION, malicious=True)
    identities, trust = make_identities(cfg.party_ids, DeterministicRandomness("unmask-workers/ids"))
    drops = {2: SecAggStep.SHARE, 1: SecAggStep.INPUT, 3: SecAggStep.UNMASK, 4: SecAggStep.UNMASK}
    inputs = random_inputs(cfg, 3)
    report = run_secagg_round(cfg, inputs, DropoutSchedule(drops, unsigned=frozenset({4})), identities=identities,
                              trust=trust, server_workers=fake_workers(2, 1))
    assert report.aborted is None and not report.client_errors
    assert [int(v) for v in report.result] == plain_sum(inputs, sorted(report.input_ids), cfg.modulus)


def _submodel_round(workers, drops, adversary="semi-malicious", clients=16):
    workload = synthetic_workload(clients=clients, universe=2000, items_per_user=60, seed=7)
    identities = trust = None
    if adversary == "malicious":
        identities, trust = make_identities([c.client_id for c in workload.clients], DeterministicRandomness("uw/ids"))
    states = {c.client_id: DeviceState.new(ReferenceTrainer(c), RRParameters.preset(2),
                                           identity=None if identities is None else identities[c.client_id], trust=trust)
              for c in workload.clients}
    table, head = init_model(np.arange(2000, dtype=np.uint64), 4, seed=1)
    before = {r: v.copy() for r, v in table.items()}
    server = ReferenceModel(table, head)
    settings = RoundSettings(universe=2000, dropout_fraction=0.3, adversary=adversary)
    try:
        outcome = run_round(states, server, settings, 0, drops, trust=trust, server_workers=workers,
                            random_source=lambda p: DeterministicRandomness(f"uw/{p}"))
    except RoundAborted as exc:
        return exc, server, before
    return outcome, server, before


DROPS = RoundDrops(psu={1: SecAggStep.INPUT, 2: SecAggStep.UNMASK}, upload={5: SecAggStep.INPUT, 6: SecAggStep.UNMASK})


@pytest.mark.parametrize("adversary", ["semi-malicious", "malicious"])
def test_a_submodel_round_with_workers_moves_the_model_exactly_as_without(adversary):
    serial, serial_model, _ = _submodel_round(None, DROPS, adversary)
    split, split_model, _ = _submodel_round(fake_workers(2, 2), DROPS, adversary)
    assert serial.contributors == split.contributors and serial.participants == 13
    assert all(np.array_equal(serial_model.table[r], split_model.table[r]) for r in serial_model.table)
    assert np.array_equal(serial_model.head.flat(), split_model.head.flat())


def test_two_real_worker_processes_give_the_serial_round_bit_for_bit(pool):
    serial, serial_model, _ = _submodel_round(None, DROPS)
    split, split_model, _ = _submodel_round(UnmaskingWorkers.from_executor(pool, 2), DROPS)
    assert serial.contributors == split.contributors
    assert all(np.array_equal(serial_model.table[r], split_model.table[r]) for r in serial_model.table)
    cfg = config(range(1, 12), dim=5000, modulus=Modulus.P61, threshold=4)
    inputs = random_inputs(cfg, seed=9)
    report = run_secagg_round(cfg, inputs, DropoutSchedule({3: SecAggStep.INPUT, 8: SecAggStep.SHARE}),
                              policy=PROTOCOL_POLICY, server_workers=UnmaskingWorkers.from_executor(pool, 2))
    assert report.aborted is None
    assert [int(v) for v in report.result] == plain_sum(inputs, sorted(report.input_ids), cfg.modulus)


# -- failures -----------------------------------------------------------------------------------------


def _raising(chunk):
    raise RuntimeError("a worker fell over")


def _dying(chunk):
    os._exit(3)  # the worker process dies without a word


def _failing_maps(pool):
    yield "raises", lambda function, chunks: map(_raising, chunks)
    yield "malformed", lambda function, chunks: (np.zeros(3, dtype=np.uint64) for _ in chunks)
    yield "short", lambda function, chunks: [function(chunk) for chunk in list(chunks)[:-1]]
    yield "pool-raises", lambda function, chunks: pool.map(_raising, chunks)


@pytest.mark.parametrize("which", ["raises", "malformed", "short", "pool-raises"])
def test_a_failing_worker_aborts_the_round_with_worker_failed_and_no_result(pool, which):
    failing = dict(_failing_maps(pool))[which]
    cfg = config(range(1, 10), dim=200, modulus=Modulus.U32, threshold=4)
    inputs = random_inputs(cfg, seed=2)
    report = run_secagg_round(cfg, inputs, DropoutSchedule({4: SecAggStep.INPUT}), policy=PROTOCOL_POLICY,
                              server_workers=UnmaskingWorkers(failing, 2))
    assert isinstance(report.aborted, WorkerFailed) and report.aborted.stage == "unmasking"
    assert report.result is None
    if which.endswith("raises"):
        assert isinstance(report.aborted.__cause__, RuntimeError)


def test_a_worker_process_that_dies_aborts_the_round_and_the_model_stays_untouched():
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as doomed:
        workers = UnmaskingWorkers(lambda function, chunks: doomed.map(_dying, chunks), 2)
        failure, server, before = _submodel_round(workers, DROPS)
    assert isinstance(failure, WorkerFailed) and "BrokenProcessPool" in str(failure)
    assert all(np.array_equal(server.table[r], before[r]) for r in before)


def test_the_server_is_left_aborted_and_never_half_unmasked():
    cfg = config(range(1, 8), dim=50, modulus=Modulus.U64, threshold=4)
    inputs = random_inputs(cfg, seed=5)
    seen = []

    def half_then_fail(function, chunks):
        for chunk in chunks:
            seen.append(True)
            if len(seen) > 1:
                raise RuntimeError("second chunk lost")
            yield function(chunk)

    server_box = {}
    original = SecAggServer.__init__

    def keep(self, *args, **kwargs):
        original(self, *args, **kwargs)
        server_box["server"] = self

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SecAggServer, "__init__", keep)
        report = run_secagg_round(cfg, inputs, DropoutSchedule({2: SecAggStep.INPUT}), policy=PROTOCOL_POLICY,
                                  server_workers=UnmaskingWorkers(half_then_fail, 2))
    server = server_box["server"]
    assert isinstance(report.aborted, WorkerFailed) and len(seen) == 2
    assert server.stage is ServerStage.ABORTED and server.abort_error is report.aborted
    with pytest.raises(Exception, match="no result"):
        _ = server.result


def test_workers_are_checked():
    with pytest.raises(InvalidParameters):
        UnmaskingWorkers(map, 0)
    with pytest.raises(InvalidParameters):
        UnmaskingWorkers("not callable", 2)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameters):
        UnmaskingWorkers.from_executor(object(), 2)
    with pytest.raises(InvalidParameters):
        SecAggServer(config(range(1, 5)), workers=map)  # type: ignore[arg-type]


def test_a_chunk_without_terms_is_zero():
    cfg = config(range(1, 5), dim=7, modulus=Modulus.P61)
    from fedprivacy.secagg.unmasking import UnmaskChunk

    assert not unmask_chunk(UnmaskChunk(cfg, (), ())).any()  # type: ignore[union-attr]


# -- the ready-made local pool and the command line --------------------------------------------------


def test_local_workers_start_warm_and_sum_exactly_and_one_means_none():
    from fedprivacy.adapters.local_workers import local_workers

    with local_workers(1) as none:
        assert none is None
    with pytest.raises(InvalidParameters), local_workers(0):
        pass
    cfg = config(range(1, 12), dim=3000, modulus=Modulus.U64, threshold=4)
    inputs = random_inputs(cfg, seed=8)
    with local_workers(2) as workers:
        assert isinstance(workers, UnmaskingWorkers) and workers.workers == 2
        report = run_secagg_round(cfg, inputs, DropoutSchedule({5: SecAggStep.INPUT}), policy=PROTOCOL_POLICY,
                                  server_workers=workers)
    assert [int(v) for v in report.result] == plain_sum(inputs, sorted(report.input_ids), cfg.modulus)


def test_the_command_line_takes_server_workers_and_reports_them(capsys):
    import json

    from fedprivacy.cli import main

    assert main(["bench", "secagg", "--clients", "12", "--dim", "2000", "--dropout", "0.2", "--drop-stage", "input",
                 "--server-workers", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["correct"] and result["server_workers"] == 2
    assert result["workers_peak_rss_bytes"] > 0
    assert len(result["parallel_capacity_before_after"]) == 2 and all(c > 0 for c in result["parallel_capacity_before_after"])
    assert result["peak_rss_with_workers_bytes"] >= result["peak_rss_mb"] * 2**20 + 2 * result["workers_peak_rss_bytes"] - 2**20
    for argv in (["bench", "round", "--server-workers", "0"], ["bench", "secagg", "--clients", "5", "--dim", "3",
                                                                "--server-workers", "65"]):
        with pytest.raises(SystemExit) as exit_status:
            main(argv)
        assert exit_status.value.code == 2
        assert "--server-workers" in capsys.readouterr().err
    assert main(["simulate", "--mode", "secagg", "--server-workers", "2"]) == 2
    assert "--server-workers does not apply to --mode secagg" in capsys.readouterr().err
