"""The reference model in float32, packed (``ReferenceModel.from_arrays``): its rows read through a
``RowTable``, its updates rounded to float32, its row downloads sent as 4-byte floats, and the bench's
plaintext check rounding the same way (and failing when the model is wrong)."""

from __future__ import annotations

import numpy as np
import pytest

from fedprivacy_bench.round import max_difference_from_plaintext
from fedprivacy.errors import InvalidParameters
from fedprivacy.hazmat.field import Modulus
from fedprivacy.ldp import RRParameters
from fedprivacy.secagg import SecAggConfig
from fedprivacy.secagg.rows import ClientRowPlan
from fedprivacy.submodel.client import DeviceState
from fedprivacy.submodel.demo import init_model, init_rows, synthetic_workload
from fedprivacy.submodel.engine import run_round
from fedprivacy.submodel.messages import RowDownload, decode_submodel_message
from fedprivacy.submodel.reference import ReferenceModel, ReferenceTrainer, RowTable
from fedprivacy.submodel.settings import RoundSettings


def test_init_rows_are_init_models_rows_packed():
    table, head = init_model(np.arange(300, dtype=np.uint64), 5, seed=3)
    values, head2 = init_rows(300, 5, seed=3)
    assert np.array_equal(np.stack([table[r] for r in range(300)]), values)
    assert np.array_equal(head.flat(), head2.flat())
    single, _ = init_rows(300, 5, seed=3, dtype=np.float32)
    assert single.dtype == np.float32 and np.array_equal(single, values.astype(np.float32))


def test_packed_server_reads_rows_without_copies_and_keeps_handed_out_rows():
    values, head = init_rows(100, 3, seed=1, dtype=np.float32)
    server = ReferenceModel.from_arrays(np.arange(100, dtype=np.uint64), values, head)
    table = server.table
    assert isinstance(table, RowTable) and len(table) == 100 and list(table)[:3] == [0, 1, 2]
    assert 5 in table and 100 not in table and -1 not in table and "x" not in table
    with pytest.raises(KeyError):
        table[100]
    row = table[7]
    kept = row.copy()
    assert not row.flags.writeable and row.dtype == np.float32
    server.apply_row_updates(np.array([7, 9], dtype=np.uint64), np.full((2, 4), 0.1))
    assert np.array_equal(row, kept) and np.array_equal(values[7], kept)  # nothing handed out was written
    assert np.array_equal(table[7], (kept.astype(np.float64) + 0.1).astype(np.float32))
    assert server.rows(np.array([7], dtype=np.uint64)).dtype == np.float32
    later = table[9]
    snapshot = later.copy()
    server.apply_row_updates(np.array([9], dtype=np.uint64), np.full((1, 4), 0.5))
    assert np.array_equal(later, snapshot)  # a row read after the first update is not written either
    with pytest.raises(InvalidParameters):
        ReferenceModel.from_arrays(np.arange(3, dtype=np.uint64), np.zeros((3, 2), dtype=np.int64), head)
    with pytest.raises(InvalidParameters):
        ReferenceModel.from_arrays(np.array([1, 1], dtype=np.uint64), np.zeros((2, 4), dtype=np.float32), head)


def test_float32_updates_and_head_are_rounded_to_float32():
    values, head = init_rows(10, 3, seed=1, dtype=np.float32)
    server = ReferenceModel.from_arrays(np.arange(10, dtype=np.uint64), values, head)
    server.apply_dense_update(np.full(4, 1e-3))
    flat = server.head.flat()
    assert np.array_equal(flat.astype(np.float32).astype(np.float64), flat)
    assert not np.array_equal(flat, head.flat() + 1e-3)  # 1.001 is not a float32: it was rounded
    float64 = ReferenceModel(*init_model(np.arange(10, dtype=np.uint64), 3, seed=1))
    float64.apply_dense_update(np.full(4, 1e-3))
    assert np.array_equal(float64.head.flat(), head.flat() + 1e-3)  # float64 rows: unchanged behaviour


def _download(rows: np.ndarray, dense: np.ndarray) -> bytes:
    parties = [1, 2, 3]
    config = SecAggConfig.create(parties, 6, Modulus.U64, full_graph=True)
    ids = np.array([4, 8, 20], dtype=np.uint64)  # two rows, then the dense pseudo-row (universe 20)
    plan = ClientRowPlan(1, 6, ids, {2: ids, 3: ids})
    return RowDownload(1, 0, config, plan, 1, rows, dense).to_bytes()


def test_a_float32_models_rows_travel_as_four_byte_floats():
    values, head = init_rows(20, 4, seed=2, dtype=np.float32)
    server = ReferenceModel.from_arrays(np.arange(20, dtype=np.uint64), values, head)
    rows = server.rows(np.array([4, 8], dtype=np.uint64))
    small = _download(rows, server.dense())
    large = _download(rows.astype(np.float64) + 1e-9, server.dense())  # not float32 numbers: 8 bytes each
    assert len(large) - len(small) == 4 * (rows.size + server.dense().size)
    message = decode_submodel_message(small)
    assert isinstance(message, RowDownload) and np.array_equal(message.rows, rows.astype(np.float64))


def _round(seed: int = 0):
    workload = synthetic_workload(clients=10, universe=600, items_per_user=40, seed=seed)
    states = {c.client_id: DeviceState.new(ReferenceTrainer(c), RRParameters.preset(2)) for c in workload.clients}
    before, head = init_rows(600, 4, seed=seed, dtype=np.float32)
    server = ReferenceModel.from_arrays(np.arange(600, dtype=np.uint64), before, head)
    settings = RoundSettings(universe=600, max_set_size=40, dropout_fraction=0.2)
    outcome = run_round(states, server, settings, 0)
    return workload, before, head, server, outcome, settings


def test_the_bench_check_rounds_as_the_float32_server_and_catches_a_wrong_row():
    workload, before, head, server, outcome, settings = _round()
    assert outcome.rows_updated > 0
    worst = max_difference_from_plaintext(workload, before, head, server, server.head, outcome, settings, 600)
    assert worst < 1e-6
    moved = int(outcome.planned_rows[0])
    server.apply_row_updates(np.array([moved], dtype=np.uint64), np.full((1, 5), 1e-4))  # a wrong row
    assert max_difference_from_plaintext(workload, before, head, server, server.head, outcome, settings, 600) > 5e-5


def test_the_round_bench_reports_memory_by_stage_in_order():
    from fedprivacy_bench.round import run_round_bench

    result = run_round_bench(12, 40, 1500, 4, 0.1, RRParameters.preset(2))
    assert result["correct"] is True
    stages = [entry["stage"] for entry in result["memory_by_stage"]]
    assert stages[:2] == ["workload", "clients and model"] and stages[-3:] == ["round", "plaintext check", "server floor"]
    assert "round: aggregating:unmask" in stages
    peaks = [entry["peak_bytes"] for entry in result["memory_by_stage"]]
    assert peaks == sorted(peaks) and peaks[-1] <= result["peak_rss_bytes"]
