"""A client saved after every step and brought back from its bytes runs the same round (hosts that keep
no object between two messages, such as Flower's ClientApp processes, rely on this)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedprivacy.errors import DecodeError, LocalProtocolError, RemoteProtocolError
from fedprivacy.hazmat.field import Modulus
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.secagg import ClientStage, RowPlan, SecAggClient, SecAggServer, ServerStage
from fedprivacy.secagg.messages import UnmaskRequest

from .helpers import config, plain_sum, random_inputs, PROTOCOL_POLICY


def _reloaded(client: SecAggClient) -> SecAggClient:
    data = client.snapshot()
    restored = SecAggClient.restore(data, policy=PROTOCOL_POLICY)
    assert restored.snapshot() == data  # canonical: one encoding per state
    return restored


def _round_with_reloads(cfg, inputs, dropped=(), early_input=(), row_plan=None):
    """A round by hand in which every client is saved and restored before and after each step."""
    server = SecAggServer(cfg, row_plan)
    clients = {
        p: SecAggClient(cfg, p, row_plan=None if row_plan is None else row_plan.for_client(p), policy=PROTOCOL_POLICY) for p in cfg.party_ids
    }
    for p in early_input:
        clients[p] = _reloaded(clients[p])
        assert clients[p].submit_input(inputs[p]) == []
    for p, client in clients.items():
        for m in client.start():
            server.receive(m)
        clients[p] = _reloaded(client)
    for out in server.close_stage():
        clients[out.recipient] = _reloaded(clients[out.recipient])
        for m in clients[out.recipient].receive(out.message):
            server.receive(m)
        clients[out.recipient] = _reloaded(clients[out.recipient])
    for out in server.close_stage():
        p = out.recipient
        clients[p] = _reloaded(clients[p])
        sent = clients[p].receive(out.message)
        if p not in early_input:
            assert clients[p].stage is ClientStage.AWAITING_INPUT
            clients[p] = _reloaded(clients[p])
            sent = clients[p].submit_input(inputs[p])
        if p not in dropped:
            for m in sent:
                server.receive(m)
        clients[p] = _reloaded(clients[p])
    requests = server.close_stage()
    for out in requests:
        clients[out.recipient] = _reloaded(clients[out.recipient])
        for m in clients[out.recipient].receive(out.message):
            server.receive(m)
        completed = _reloaded(clients[out.recipient])
        assert completed.stage is ClientStage.COMPLETED
        assert completed.receive(out.message) == clients[out.recipient].receive(out.message)  # same answer again
        clients[out.recipient] = completed
    server.close_stage()
    assert server.stage is ServerStage.COMPLETED
    return server, clients


@pytest.mark.parametrize("modulus", list(Modulus))
def test_reloaded_clients_sum_exactly(modulus):
    cfg = config(range(1, 8), dim=9, modulus=modulus, neighbours=4, threshold=2)
    inputs = random_inputs(cfg, seed=5)
    server, _ = _round_with_reloads(cfg, inputs, dropped={3}, early_input={2, 6})
    assert server.input_ids == set(cfg.party_ids) - {3}
    assert [int(v) for v in server.result] == plain_sum(inputs, server.input_ids, modulus)


def test_reloaded_clients_in_the_full_graph_and_with_row_plans():
    cfg = config(range(1, 6), dim=4, threshold=3)
    inputs = random_inputs(cfg, seed=1)
    server, _ = _round_with_reloads(cfg, inputs, dropped={4})
    assert [int(v) for v in server.result] == plain_sum(inputs, {1, 2, 3, 5}, Modulus.U32)
    chosen = {1: [2, 5], 2: [5, 9], 3: [2, 9], 4: [9], 5: [2, 5, 9]}
    plan = RowPlan(np.array([2, 5, 9]), 2, {p: np.array(rows) for p, rows in chosen.items()})
    row_cfg = config(range(1, 6), dim=plan.dim, threshold=3)
    row_inputs = {p: (np.arange(len(chosen[p]) * 2) + 10 * p).astype(np.uint32) for p in row_cfg.party_ids}
    server, _ = _round_with_reloads(row_cfg, row_inputs, row_plan=plan)
    expected = {2: [0, 0], 5: [0, 0], 9: [0, 0]}
    for p, rows in chosen.items():
        for row, block in zip(rows, row_inputs[p].reshape(-1, 2)):
            expected[row] = [a + int(b) for a, b in zip(expected[row], block)]
    assert [int(v) for v in server.result] == [v for row in (2, 5, 9) for v in expected[row]]


def test_a_restored_client_keeps_its_refusals():
    cfg = config(range(1, 6), dim=3, threshold=3)
    inputs = random_inputs(cfg)
    _, clients = _round_with_reloads(cfg, inputs)
    client = clients[1]
    answered = client._answered  # a different split for the same client must still be refused after a reload
    other = UnmaskRequest(1, answered[0][1:], (answered[0][0],))
    with pytest.raises(RemoteProtocolError, match="different split"):
        client.receive(other)
    with pytest.raises(LocalProtocolError):
        client.snapshot()  # it aborted: nothing to keep


def test_snapshot_holds_what_the_client_needs_and_no_input_after_masking():
    cfg = config(range(1, 5), dim=3, threshold=2)
    client = SecAggClient(cfg, 1, random_bytes=DeterministicRandomness("state"), policy=PROTOCOL_POLICY)
    client.submit_input(np.array([7, 8, 9], dtype=np.uint32))
    restored = SecAggClient.restore(client.snapshot(), policy=PROTOCOL_POLICY)
    assert np.array_equal(restored._input, [7, 8, 9]) and restored.stage is ClientStage.CREATED
    assert restored.start()[0].to_bytes() != b""


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_decode_error(raw):
    with pytest.raises(DecodeError):
        SecAggClient.restore(raw, policy=PROTOCOL_POLICY)


def test_mutated_snapshots_raise_only_decode_error():
    cfg = config(range(1, 6), dim=3, threshold=3)
    _, clients = _round_with_reloads(cfg, random_inputs(cfg))
    data = clients[2].snapshot()
    rng = np.random.default_rng(0)  # public test data
    for _ in range(300):
        mutated = bytearray(data)
        position = int(rng.integers(0, len(data)))
        mutated[position] ^= 1 << int(rng.integers(0, 8))
        try:
            SecAggClient.restore(bytes(mutated), policy=PROTOCOL_POLICY)
        except DecodeError:
            pass
    for cut in range(0, len(data), 7):
        with pytest.raises(DecodeError):
            SecAggClient.restore(data[:cut], policy=PROTOCOL_POLICY)
    with pytest.raises(DecodeError):
        SecAggClient.restore(data + b"\0", policy=PROTOCOL_POLICY)
