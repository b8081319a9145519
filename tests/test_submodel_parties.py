"""The secure submodel round's sans-I/O parties: stage tables, wire format, and misbehaviour."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedprivacy.errors import DecodeError, InvalidParameters, LocalProtocolError, RemoteProtocolError
from fedprivacy.hazmat.field import Modulus
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.ldp import RRParameters
from fedprivacy.secagg.messages import AdvertiseKeys
from fedprivacy.secagg.rows import ClientRowPlan
from fedprivacy.submodel.demo import init_model, synthetic_workload
from fedprivacy.submodel.client import DeviceState, SubmodelRoundClient
from fedprivacy.submodel.messages import (
    Phase,
    PhaseMessage,
    RandomizedSetReport,
    RoundStart,
    RowDownload,
    SitOut,
    UnionBroadcast,
    decode_submodel_message,
)
from fedprivacy.submodel.reference import ReferenceModel, ReferenceTrainer
from fedprivacy.submodel.server import SubmodelRoundServer
from fedprivacy.submodel.settings import RoundSettings
from fedprivacy.submodel.stages import RoundClientStage, RoundServerStage

from .helpers import budget_events, drive_round


def _parties(clients=6, seed=2):
    workload = synthetic_workload(clients=clients, universe=500, items_per_user=30, seed=seed)
    states = {c.client_id: DeviceState.new(ReferenceTrainer(c), RRParameters.preset(2)) for c in workload.clients}
    model = ReferenceModel(*init_model(np.arange(500, dtype=np.uint64), 4, seed=1))
    settings = RoundSettings(universe=500, max_set_size=30, dropout_fraction=0.2)
    server = SubmodelRoundServer(model, settings, sorted(states), 0)
    clients = {p: SubmodelRoundClient(s, p, random_bytes=DeterministicRandomness(f"parties-{p}")) for p, s in states.items()}
    return server, clients, states


def _wire(message):
    return decode_submodel_message(message.to_bytes())


def test_a_round_through_the_parties_completes_and_every_client_ends_completed():
    server, clients, states = _parties()
    drive_round(server, clients, RoundServerStage.COMPLETED)
    assert {c.stage for c in clients.values()} == {RoundClientStage.COMPLETED}
    assert server.result is not None and server.result.contributors == frozenset(clients)
    assert all(len(budget_events(s.ledger)) == 1 for s in states.values())


def test_a_client_refuses_a_plan_with_rows_outside_its_randomized_set():
    server, clients, states = _parties()
    outbound = drive_round(server, clients, RoundServerStage.AGGREGATING)
    victim = outbound[0].recipient
    download = _wire(outbound[0].message)
    assert isinstance(download, RowDownload)
    outside = np.setdiff1d(np.arange(500, dtype=np.uint64), clients[victim].chosen)[:1]
    real_rows = np.union1d(download.plan.rows[: -download.dense_rows], outside)
    rows = np.concatenate([real_rows, download.plan.rows[-download.dense_rows:]])
    forged = RowDownload(victim, 0, download.config, ClientRowPlan(victim, download.plan.width, rows), download.dense_rows,
                         np.zeros((real_rows.shape[0], download.rows.shape[1])), download.dense)
    with pytest.raises(RemoteProtocolError, match="outside this client's randomized set"):
        clients[victim].receive(_wire(forged))
    assert clients[victim].stage is RoundClientStage.ABORTED
    with pytest.raises(LocalProtocolError):  # an aborted client takes no further part
        clients[victim].receive(_wire(forged))


def test_a_client_refuses_a_plan_that_leaves_rows_without_partners():
    server, clients, _ = _parties()
    outbound = drive_round(server, clients, RoundServerStage.AGGREGATING)
    for index, forge in enumerate([
        lambda plan: {},  # nobody masks with it: the self mask alone would hide its blocks
        lambda plan: {peer: rows[-1:] for peer, rows in plan.shared.items()},  # only the dense rows shared
        lambda plan: {**plan.shared, 4_000_000: plan.rows},  # a partner outside the sum
    ]):
        download = _wire(outbound[index].message)
        victim = download.recipient
        plan = ClientRowPlan(victim, download.plan.width, download.plan.rows, forge(download.plan))
        forged = RowDownload(victim, 0, download.config, plan, download.dense_rows, download.rows, download.dense)
        if index == 2:  # version 3: the wire names partners by their index in the sum, so it cannot say this
            with pytest.raises(InvalidParameters, match="not a party of the sum"):
                forged.to_bytes()
        with pytest.raises(RemoteProtocolError, match="partners|choosers|shared with every"):
            clients[victim].receive(forged if index == 2 else _wire(forged))
        assert clients[victim].stage is RoundClientStage.ABORTED
    # Itself as a partner: neither form of a plan can say it (a plan built so is refused).
    download = _wire(outbound[3].message)
    with pytest.raises(InvalidParameters, match="other parties"):
        ClientRowPlan(download.recipient, download.plan.width, download.plan.rows,
                      {**download.plan.shared, download.recipient: download.plan.rows})


def test_a_client_refuses_oversized_psu_tables_and_unbounded_reruns():
    from dataclasses import replace

    from fedprivacy.psu.params import PSUParameters

    server, clients, _ = _parties()
    outbound = server.start()
    start = outbound[0].message
    party = outbound[0].recipient
    big = PSUParameters(500, 10 * start.psu_params.union_bound, start.psu_params.session_id)
    with pytest.raises(RemoteProtocolError, match="public caps"):
        clients[party].receive(_wire(RoundStart(party, 0, start.settings, big,
                                                replace(start.psu_config, dim=big.vector_length), start.rows_config)))
    odd_shape = PSUParameters(500, start.psu_params.union_bound, start.psu_params.session_id, cells_per_id=60.0)
    other = outbound[1].recipient
    with pytest.raises(RemoteProtocolError, match="default shape"):
        clients[other].receive(_wire(RoundStart(other, 0, start.settings, odd_shape,
                                                replace(start.psu_config, dim=odd_shape.vector_length), start.rows_config)))
    # A rerun past max_psu_attempts is refused.
    third = outbound[2].recipient
    once = replace(start.settings, max_psu_attempts=1)
    clients[third].receive(_wire(RoundStart(third, 0, once, start.psu_params, start.psu_config, start.rows_config)))
    rerun = PSUParameters(500, start.psu_params.union_bound, start.psu_params.session_id, 1)
    with pytest.raises(RemoteProtocolError, match="beyond the attempts"):
        clients[third].receive(_wire(RoundStart(third, 0, once, rerun, start.psu_config, start.rows_config)))


def test_clients_reject_messages_out_of_turn_and_foreign_rounds():
    server, clients, _ = _parties()
    outbound = server.start()
    first = outbound[0]
    client = clients[first.recipient]
    with pytest.raises(RemoteProtocolError):  # a union before the PSU
        client.receive(UnionBroadcast(0, np.arange(3, dtype=np.uint64)))
    assert client.stage is RoundClientStage.ABORTED
    other = clients[outbound[1].recipient]
    with pytest.raises(RemoteProtocolError):  # addressed to someone else
        other.receive(_wire(first.message))


def test_the_server_ignores_junk_late_and_foreign_messages_without_changing_stage():
    server, clients, _ = _parties()
    outbound = server.start()
    server.receive(RandomizedSetReport(outbound[0].recipient, np.arange(3, dtype=np.uint64), 0))  # too early
    server.receive(SitOut(999, 0))  # not a party
    # The rows' sum is set up during the PSU, but it has no attempts.
    server.receive(PhaseMessage(Phase.ROWS, 1, AdvertiseKeys(outbound[0].recipient, b"\x01" * 32, b"\x02" * 32)))
    assert server.stage is RoundServerStage.PSU and len(server.ignored) == 3
    with pytest.raises(LocalProtocolError):
        server.start()


def test_reports_outside_the_union_or_duplicated_are_ignored():
    server, clients, _ = _parties()
    drive_round(server, clients, RoundServerStage.COLLECTING_REPORTS)
    party = sorted(clients)[0]
    bogus = np.setdiff1d(np.arange(500, dtype=np.uint64), server.union)[:1]
    assert bogus.size  # 6 clients x 30 ids cannot cover 500
    server.receive(RandomizedSetReport(party, bogus, 0))
    assert server.ignored[-1].detail == "ids outside the union"
    server.receive(RandomizedSetReport(party, server.union[:2], 0))
    server.receive(RandomizedSetReport(party, server.union[:3], 0))
    assert server.ignored[-1].reason.value == "duplicate"


def test_an_oversized_client_sums_an_empty_sketch_and_sits_out_without_a_ledger_line():
    server, clients, states = _parties()
    victim = sorted(clients)[1]

    class Greedy(ReferenceTrainer):
        def index_set(self):
            return np.arange(100, dtype=np.uint64)

    states[victim].client = Greedy(states[victim].client.data)
    drive_round(server, clients, RoundServerStage.COMPLETED)
    assert clients[victim].stage is RoundClientStage.SAT_OUT and clients[victim].sat_out_reason == "oversized"
    assert victim not in server.result.chosen and not budget_events(states[victim].ledger)
    assert not np.isin(np.arange(100, dtype=np.uint64), server.union).all()  # its ids did not enter U


def test_round_start_and_download_round_trip():
    server, clients, _ = _parties()
    start = server.start()[0].message
    again = _wire(start)
    assert isinstance(again, RoundStart) and again.to_bytes() == start.to_bytes()
    assert again.settings == start.settings and again.psu_config == start.psu_config


def _complex_messages():
    server, clients, _ = _parties(clients=4)
    start = server.start()[0].message.to_bytes()
    server, clients, _ = _parties(clients=4)
    download = drive_round(server, clients, RoundServerStage.AGGREGATING)[0].message.to_bytes()
    return [start, download]


submodel_bytes = st.sampled_from(_complex_messages() + [
    SitOut(3, 7).to_bytes(),
    RandomizedSetReport(2, np.array([1, 5, 9], dtype=np.uint64), 4).to_bytes(),
    UnionBroadcast(1, np.array([0, 2], dtype=np.uint64)).to_bytes(),
    PhaseMessage(Phase.PSU, 1, AdvertiseKeys(5, b"\x01" * 32, b"\x02" * 32)).to_bytes(),
])


@given(submodel_bytes, st.data())
def test_mutated_submodel_bytes_raise_only_decode_error(data, draw):
    position = draw.draw(st.integers(0, len(data) - 1))
    value = draw.draw(st.integers(0, 255))
    cut = draw.draw(st.integers(0, len(data)))
    for candidate in (data[:position] + bytes([value]) + data[position + 1:], data[:cut], data + b"\x00"):
        try:
            message = decode_submodel_message(candidate)
        except DecodeError:
            continue
        assert message.to_bytes() == candidate  # whatever decodes is canonical


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_decode_error(raw):
    for candidate in (raw, b"FPRV\x01\x03" + raw):
        try:
            decode_submodel_message(candidate)
        except DecodeError:
            pass


def test_non_finite_parameters_are_rejected():
    server, clients, _ = _parties()
    outbound = drive_round(server, clients, RoundServerStage.AGGREGATING)
    download = outbound[0].message
    dense = download.dense.copy()
    dense[0] = np.nan
    bad = RowDownload(download.recipient, 0, download.config, download.plan, download.dense_rows, download.rows, dense)
    with pytest.raises(DecodeError):
        decode_submodel_message(bad.to_bytes())
    assert Modulus(download.config.modulus) is Modulus.U64


def test_id_sets_are_rice_coded_canonically_and_the_retired_types_are_refused():
    from fedprivacy.submodel.messages import RandomizedSetReport, UnionBroadcast

    dense = np.arange(0, 4000, 3, dtype=np.uint64)  # a third of [0, 4000)
    sparse = np.array([5, 10_000_000], dtype=np.uint64)
    for ids in (dense, sparse, np.zeros(0, dtype=np.uint64), np.array([(1 << 63) - 1], dtype=np.uint64)):
        for message in (UnionBroadcast(7, ids), RandomizedSetReport(3, ids, 7)):
            data = message.to_bytes()
            assert data[6] == (10 if isinstance(message, UnionBroadcast) else 9)
            again = decode_submodel_message(data)
            assert again.round_index == 7 and np.array_equal(again.ids, ids) and again.to_bytes() == data
    # Every third id of [0, 4000): gaps of 2, k = 0, 3 bits an id (as many as a bitmap); every 16th:
    # gaps of 15, k = 3, 5 bits an id (a bitmap takes 16, a u64 list 64).
    assert len(UnionBroadcast(7, dense).to_bytes()) == 15 + 9 + (1 + 3 * (dense.shape[0] - 1) + 7) // 8
    sixteenth = np.arange(0, 16_000, 16, dtype=np.uint64)
    assert len(UnionBroadcast(7, sixteenth).to_bytes()) == 15 + 9 + (2 * 1000 + 7) // 8 + (3 * 1000 + 7) // 8
    data = bytearray(UnionBroadcast(7, dense).to_bytes())
    data[19] = 1  # another Rice parameter for the same ids: refused (one encoding per set)
    with pytest.raises(DecodeError):
        decode_submodel_message(bytes(data))
    # Version 1's RoundStart and UnionBroadcast, version 2's report, download and union.
    for retired in (1, 2, 4, 6, 8):
        with pytest.raises(DecodeError):
            decode_submodel_message(b"FPRV\x01\x03" + bytes([retired]) + bytes(40))
