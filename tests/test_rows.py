"""Per-row secure aggregation: masks bound to row ids cancel per row among exactly the choosers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedprivacy.errors import DecodeError, InvalidParameters
from fedprivacy.hazmat.field import Modulus, dtype_of, modulus_value
from fedprivacy.secagg import ClientRowPlan, DropoutSchedule, SecAggStep, RowPlan, SecAggClient, SecAggConfig, run_secagg_round
from fedprivacy.secagg.rows import row_keystream

from .helpers import PROTOCOL_POLICY

SESSION = b"fedprivacy row aggregation tests"


def _inputs(plan: RowPlan, modulus: Modulus, seed: int):
    rng = np.random.default_rng(seed)  # public test data
    high = min(modulus_value(modulus), 1 << 63)
    return {
        p: rng.integers(0, high, rows.shape[0] * plan.width, dtype=np.uint64).astype(dtype_of(modulus))
        for p, rows in plan.chosen.items()
    }


def _plain_rows(plan: RowPlan, inputs, parties, modulus):
    high = modulus_value(modulus)
    total = {int(r): [0] * plan.width for r in plan.union}
    for p in parties:
        blocks = inputs[p].reshape(-1, plan.width)
        for row, block in zip(plan.chosen[p], blocks):
            total[int(row)] = [(a + int(b)) % high for a, b in zip(total[int(row)], block)]
    return [total[int(r)] for r in plan.union]


@settings(max_examples=40)
@given(st.data())
def test_per_row_sums_over_surviving_choosers(data):
    n = data.draw(st.integers(3, 8))
    ids = tuple(range(1, n + 1))
    union = np.array(sorted(data.draw(st.sets(st.integers(0, 2**40), min_size=1, max_size=25))), dtype=np.uint64)
    chosen = {p: np.array(sorted(data.draw(st.sets(st.sampled_from(union.tolist())))), dtype=np.uint64) for p in ids}
    width = data.draw(st.integers(1, 6))
    modulus = data.draw(st.sampled_from(list(Modulus)))
    plan = RowPlan(union, width, chosen)
    threshold = max(2, n // 2)
    config = SecAggConfig(ids, plan.dim, modulus, n - 1, threshold, SESSION)
    drops = data.draw(st.dictionaries(st.sampled_from(ids), st.sampled_from(list(SecAggStep)), max_size=n - threshold - 1))
    inputs = _inputs(plan, modulus, data.draw(st.integers(0, 1000)))
    report = run_secagg_round(config, inputs, DropoutSchedule(drops), row_plan=plan, policy=PROTOCOL_POLICY)
    assert report.aborted is None and not report.client_errors
    survivors = {p for p in ids if drops.get(p) in (None, SecAggStep.UNMASK)}
    expected = _plain_rows(plan, inputs, survivors, modulus)
    assert report.result.reshape(-1, width).astype(object).tolist() == expected


def test_rows_nobody_surviving_chose_stay_zero_and_unknown_rows_are_refused():
    union = np.array([3, 9, 27, 81], dtype=np.uint64)
    plan = RowPlan(union, 2, {1: [3, 9], 2: [9], 3: [9, 27]})
    config = SecAggConfig((1, 2, 3), plan.dim, Modulus.U32, 2, 2, SESSION)
    inputs = {p: np.full(rows.shape[0] * 2, p, dtype=np.uint32) for p, rows in plan.chosen.items()}
    report = run_secagg_round(config, inputs, row_plan=plan, policy=PROTOCOL_POLICY)
    assert report.result.reshape(-1, 2).tolist() == [[1, 1], [6, 6], [3, 3], [0, 0]]
    with pytest.raises(InvalidParameters, match="outside the union"):
        RowPlan(union, 2, {1: [4]})
    # A sparse graph is allowed (protocols/submodel/spec.md, "Sparse rows"): the client masks with its neighbours.
    sparse = SecAggClient(SecAggConfig((1, 2, 3, 4), 4, Modulus.U32, 2, 2, SESSION), 1, row_plan=ClientRowPlan(1, 1, [1]),
                          policy=PROTOCOL_POLICY)
    assert len(sparse.neighbours) == 2


def test_masks_are_bound_to_row_ids_not_positions():
    key = b"k" * 16
    both = row_keystream(key, np.array([5, 70], dtype=np.uint64), 9, Modulus.U32)
    alone = row_keystream(key, np.array([70], dtype=np.uint64), 9, Modulus.U32)
    assert np.array_equal(both[1], alone[0]) and not np.array_equal(both[0], both[1])


def test_uploads_are_masked_per_row():
    union = np.arange(10, dtype=np.uint64)
    plan = RowPlan(union, 4, {1: union, 2: union[:5], 3: union[3:]})
    config = SecAggConfig((1, 2, 3), plan.dim, Modulus.U32, 2, 2, SESSION)
    uploads = {}
    zeros = {p: np.zeros(rows.shape[0] * 4, dtype=np.uint32) for p, rows in plan.chosen.items()}
    report = run_secagg_round(
        config, zeros, row_plan=plan,
        observer=lambda s, r, d: uploads.__setitem__(s, np.frombuffer(d[-4 * zeros[s].shape[0]:], "<u4")) if r == 0 and d[6] == 5 else None, policy=PROTOCOL_POLICY,
    )
    assert not report.result.any()
    assert all(np.count_nonzero(u) > 0.9 * u.shape[0] for u in uploads.values())


def test_client_plan_round_trip_and_validation():
    plan = RowPlan(np.arange(20, dtype=np.uint64) * 3, 5, {1: [0, 3, 30], 2: [3, 30, 57], 3: [0]})
    client = plan.for_client(1)
    again = ClientRowPlan.decode(client.encode())
    assert again.party_id == 1 and again.width == 5 and np.array_equal(again.rows, client.rows)
    assert {p: r.tolist() for p, r in again.shared.items()} == {2: [3, 30], 3: [0]}
    with pytest.raises(DecodeError):
        ClientRowPlan.decode(client.encode()[:-2])
    with pytest.raises(InvalidParameters):
        ClientRowPlan(1, 2, [5, 3])


def _positions_form(plan: ClientRowPlan) -> bytes:
    """The positions form (type 8) of a plan, whatever its canonical form is."""
    from fedprivacy.encoding import ProtocolCode, Writer

    writer = Writer(ProtocolCode.SECAGG, 8).u32(plan.party_id).u32(plan.width).u32(plan.rows.shape[0])
    writer.fixed(plan.rows.astype(">u8").tobytes(), 8 * plan.rows.shape[0])
    sharing = list(plan.sharing())
    writer.u32(len(sharing))
    for peer, positions in sharing:
        writer.u32(peer).u32(positions.shape[0]).fixed(positions.astype(">u4").tobytes(), 4 * positions.shape[0])
    return writer.finish()


def test_a_plan_takes_its_shorter_form_and_both_forms_mean_the_same():
    # Many peers sharing most rows: the bitmap form; few sharing few: the positions form.
    chosen = {p: np.arange(0, 60, 1 + p % 2, dtype=np.uint64) for p in range(1, 41)}
    dense = RowPlan(np.arange(60, dtype=np.uint64), 3, chosen)
    sparse = RowPlan(np.arange(60, dtype=np.uint64), 3, {1: np.arange(50, dtype=np.uint64), 2: [5], 3: [9, 55]})
    for plan, kind in ((dense, 10), (sparse, 8)):
        for party in (1,) if plan is sparse else plan.chosen:
            client = plan.for_client(party)
            data = client.encode()
            assert data[6] == kind
            again = ClientRowPlan.decode(data)
            assert np.array_equal(again.rows, client.rows)
            expected = {p: r.tolist() for p, r in client.shared.items()}
            assert {p: r.tolist() for p, r in again.shared.items()} == expected
            assert again.encode() == data  # canonical
            explicit = ClientRowPlan(party, 3, client.rows, client.shared)
            assert explicit.encode() == data  # the lazy and the explicit plan encode alike
    # The longer form is refused: the positions form of a plan whose bitmap is shorter.
    with pytest.raises(DecodeError, match="shorter form"):
        ClientRowPlan.decode(_positions_form(ClientRowPlan.decode(dense.for_client(1).encode())))


def test_a_bitmap_plan_with_bad_bits_is_refused():
    chosen = {p: np.arange(0, 60, 1 + p % 2, dtype=np.uint64) for p in range(1, 41)}
    client = RowPlan(np.arange(60, dtype=np.uint64), 3, chosen).for_client(1)
    data = bytearray(client.encode())
    assert data[6] == 10
    body = len(data) - client.rows.shape[0] * 5  # its rows x ceil(40 / 8) bytes at the end
    clear_own = bytearray(data)
    clear_own[body] &= 0x7F  # party 1 is column 0: bit 7 of each row's first byte
    with pytest.raises(DecodeError, match="own party"):
        ClientRowPlan.decode(bytes(clear_own))
    assert ClientRowPlan.decode(bytes(data)).party_id == 1


def test_a_per_row_sum_takes_its_plan_after_the_setup_and_only_then():
    from fedprivacy.errors import LocalProtocolError
    from fedprivacy.secagg import SecAggServer

    config = SecAggConfig((1, 2, 3), 4, Modulus.U64, 2, 2, b"per-row sum set up before plan")  # full graph, t = 2
    server = SecAggServer(config, per_row=True)
    plan = RowPlan([7, 9], 4, {1: [7, 9], 2: [7, 9]})
    with pytest.raises(LocalProtocolError):
        server.set_row_plan(plan)  # before the shares were routed
    clients = {p: SecAggClient(config, p, per_row=True, policy=PROTOCOL_POLICY) for p in (1, 2, 3)}
    for p, c in clients.items():
        for m in c.start():
            server.receive(m)
    for out in server.close_stage():
        for m in clients[out.recipient].receive(out.message):
            server.receive(m)
    routed = server.close_stage()
    for out in routed:
        assert clients[out.recipient].receive(out.message) == []  # no input yet: nothing to send
    with pytest.raises(InvalidParameters):
        server.set_row_plan(RowPlan([7, 9], 3, {1: [7], 2: [9]}))  # another block width
    server.set_row_plan(plan)
    with pytest.raises(LocalProtocolError):
        server.set_row_plan(plan)  # once
    with pytest.raises(LocalProtocolError):
        clients[1].submit_input(np.zeros(8, dtype=np.uint64))  # a per-row sum needs its plan with the input
    for p in (1, 2):
        for m in clients[p].submit_input(np.full(8, p, dtype=np.uint64), row_plan=plan.for_client(p)):
            server.receive(m)
    for out in server.close_stage():
        for m in clients[out.recipient].receive(out.message):
            server.receive(m)
    server.close_stage()
    assert server.result.tolist() == [3] * 8  # both rows: 1 + 2 per word; party 3 (no plan) dropped
