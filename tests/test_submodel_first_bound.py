"""The first PSU table sized from the server's estimate of the union (protocols/submodel/spec.md,
"First PSU table"): what a client accepts (a first bound up to the ceiling, never above), the union
sizes it takes (up to the table's cells and the ceiling, whatever the nominal bound), the engine and
``simulate`` carrying the last round's union forward, a rerun when the union outgrows the table,
and the snapshot restore path."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from itertools import pairwise

import numpy as np
import pytest

from fedprivacy.cli import main
from fedprivacy.errors import DecodeError, InvalidParameters, RemoteProtocolError, RoundAborted
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.ldp import RRParameters
from fedprivacy.psu.params import PSUParameters
from fedprivacy.submodel._snapshot import decode_round, encode_round
from fedprivacy.submodel.client import DeviceState, SubmodelRoundClient
from fedprivacy.submodel.demo import init_model, synthetic_workload
from fedprivacy.submodel.engine import run_round
from fedprivacy.submodel.messages import RoundStart, UnionBroadcast, decode_submodel_message
from fedprivacy.submodel.reference import ReferenceModel, ReferenceTrainer
from fedprivacy.submodel.server import PSU_HEADROOM, SubmodelRoundServer, first_psu_bound
from fedprivacy.submodel.settings import RoundSettings
from fedprivacy.submodel.stages import RoundClientStage, RoundServerStage

from .attacks.workload import FixedSetClient, TinyModel

UNIVERSE = 500
SETTINGS = RoundSettings(universe=UNIVERSE, max_set_size=30, dropout_fraction=0.2)
CEILING = 6 * 30  # six clients of at most 30 ids each
# With this session the table of bound 99 (396 cells) peels the workload's union of 104 ids at the
# first attempt.
SESSION = b"first bound test session 0001"


def _world(clients: int = 6):
    workload = synthetic_workload(clients=clients, universe=UNIVERSE, items_per_user=30, seed=2)
    states = {c.client_id: DeviceState.new(ReferenceTrainer(c), RRParameters.preset(2)) for c in workload.clients}
    union = np.unique(np.concatenate([np.unique(c.train_items) for c in workload.clients]))
    model = ReferenceModel(*init_model(np.arange(UNIVERSE, dtype=np.uint64), 4, seed=1))
    return states, model, union


def _clients(states):
    return {p: SubmodelRoundClient(s, p, random_bytes=DeterministicRandomness(f"first-{p}")) for p, s in states.items()}


def _wire(message):
    return decode_submodel_message(message.to_bytes())


def _drive(server, clients, until: RoundServerStage, tamper=None):
    """Through bytes until the server reaches ``until`` (or completes); ``tamper`` rewrites server messages."""
    outbound = server.start()
    while server.stage is not until and server.stage not in (RoundServerStage.COMPLETED, RoundServerStage.ABORTED):
        for item in outbound:
            message = item.message if tamper is None else tamper(item.message)
            client = clients[item.recipient]
            if client.stage is RoundClientStage.ABORTED:
                continue
            try:
                replies = client.receive(_wire(message))
            except RemoteProtocolError:
                continue
            for reply in replies:
                server.receive(_wire(reply))
        try:
            outbound = server.close_stage()
        except RoundAborted:  # e.g. no report arrived after a forged union
            return []
    return outbound


# -- the first bound ---------------------------------------------------------------------------------


def test_first_psu_bound_is_the_headroom_over_the_estimate_within_one_and_the_ceiling():
    assert first_psu_bound(SETTINGS, 6) == CEILING  # no estimate: the ceiling, as before
    assert first_psu_bound(SETTINGS, 6, 80) == math.ceil(PSU_HEADROOM * 80) == 100
    assert first_psu_bound(SETTINGS, 6, 170) == CEILING  # never above what the parties can hold
    assert first_psu_bound(SETTINGS, 6, 0) == 1
    for bad in (-1, 1.5, True, "80"):
        with pytest.raises(InvalidParameters):
            first_psu_bound(SETTINGS, 6, bad)


def test_the_server_refuses_a_first_bound_outside_one_to_the_ceiling():
    states, model, _ = _world()
    for bad in (0, CEILING + 1):
        with pytest.raises(InvalidParameters, match="first PSU bound"):
            SubmodelRoundServer(model, SETTINGS, sorted(states), 0, psu_first_bound=bad)
    with pytest.raises(InvalidParameters, match="not both"):
        SubmodelRoundServer(model, SETTINGS, sorted(states), 0, psu_first_bound=50, union_estimate=40)


# -- what the client accepts -------------------------------------------------------------------------


def _round_start(bound: int) -> tuple[dict, RoundStart]:
    states, model, _ = _world()
    server = SubmodelRoundServer(model, SETTINGS, sorted(states), 0, psu_first_bound=bound)
    start = server.start()[0]
    return _clients(states), start.message


@pytest.mark.parametrize("bound", [1, 40, CEILING - 1, CEILING])
def test_a_client_takes_a_first_table_of_any_bound_up_to_the_ceiling(bound):
    clients, start = _round_start(bound)
    assert start.psu_params.union_bound == bound
    out = clients[start.recipient].receive(_wire(start))
    assert out and clients[start.recipient].stage is RoundClientStage.SKETCH_SENT


def test_a_client_refuses_a_first_table_above_the_ceiling():
    clients, start = _round_start(CEILING)
    big = PSUParameters(UNIVERSE, CEILING + 1, start.psu_params.session_id)
    forged = RoundStart(start.recipient, 0, start.settings, big, replace(start.psu_config, dim=big.vector_length),
                        start.rows_config)
    client = clients[start.recipient]
    with pytest.raises(RemoteProtocolError, match="public caps"):
        client.receive(_wire(forged))
    assert client.stage is RoundClientStage.ABORTED


def test_a_client_refuses_a_first_attempt_that_is_not_attempt_zero():
    clients, start = _round_start(50)
    later = PSUParameters(UNIVERSE, 50, start.psu_params.session_id, 1)
    with pytest.raises(RemoteProtocolError, match="public caps"):
        clients[start.recipient].receive(_wire(replace(start, psu_params=later)))


# -- the union's size --------------------------------------------------------------------------------


def test_a_union_above_the_nominal_bound_that_the_table_decoded_is_accepted_by_server_and_clients():
    """A first table of bound 99 (396 cells) peels the 104-id union: the server takes it at the first
    attempt, every client answers over it, and the round completes."""
    states, model, union = _world()
    assert union.shape[0] == 104
    server = SubmodelRoundServer(model, SETTINGS, sorted(states), 0, session_id=SESSION, psu_first_bound=99)
    clients = _clients(states)
    _drive(server, clients, RoundServerStage.COMPLETED)
    assert server.stage is RoundServerStage.COMPLETED and server.result is not None
    assert server.result.psu_bounds == (99,) and server.result.psu_attempts == 1
    assert np.array_equal(server.result.union, union)  # more ids than the bound, exactly the union
    assert {c.stage for c in clients.values()} == {RoundClientStage.COMPLETED}


def _padded(union: np.ndarray, size: int) -> np.ndarray:
    extra = np.setdiff1d(np.arange(UNIVERSE, dtype=np.uint64), union)[: size - union.shape[0]]
    return np.union1d(union, extra)


@pytest.mark.parametrize("which", ["cells", "ceiling"])
def test_a_union_up_to_the_tables_cells_and_the_ceiling_is_taken_one_more_id_is_refused(which):
    """The rule both ways: min(cells, ceiling) ids are answered over; one more aborts every client
    before it runs randomized response or touches its memo. "cells": a cap of 100 ids a client (the
    ceiling is the universe, 500) and a first table of bound 99, whose cells are the limit; "ceiling": a
    first table at the ceiling of 6 x 30, whose cells exceed it."""
    settings, bound = (replace(SETTINGS, max_set_size=100), 99) if which == "cells" else (SETTINGS, CEILING)
    ceiling, cells = settings.psu_bound(6), PSUParameters(UNIVERSE, bound, SESSION).cells
    assert (cells < ceiling) == (which == "cells")
    limit = min(cells, ceiling)
    for extra, accepted in ((0, True), (1, False)):
        states, model, union = _world()
        server = SubmodelRoundServer(model, settings, sorted(states), 0, session_id=SESSION, psu_first_bound=bound)
        clients = _clients(states)
        sent = _padded(union, limit + extra)

        def tamper(message, sent=sent):
            return UnionBroadcast(message.round_index, sent) if isinstance(message, UnionBroadcast) else message

        _drive(server, clients, RoundServerStage.AGGREGATING, tamper)
        assert server.result is None and server.stage is not RoundServerStage.PSU  # the table decoded
        for client in clients.values():
            if accepted:
                assert client.stage is RoundClientStage.REPORT_SENT and client.chosen is not None
            else:
                assert client.stage is RoundClientStage.ABORTED and "above the PSU table's bound" in str(client.error)
                assert client.chosen is None and len(client.state.memo) == 0


# -- the engine across rounds ------------------------------------------------------------------------


def _fixed_states(sets: dict[int, np.ndarray]) -> dict[int, DeviceState]:
    return {p: DeviceState.new(FixedSetClient(p, ids), RRParameters.preset(2)) for p, ids in sets.items()}


def _seeded(tag: str):
    return lambda party: DeterministicRandomness(f"{tag}/{party}")


def test_run_round_sizes_the_first_table_from_the_estimate_and_reports_it():
    states, model, union = _world()
    outcome = run_round(states, model, SETTINGS, 0, union_estimate=100, random_source=_seeded("estimate"))
    assert outcome.psu_first_bound == 125 and outcome.union_size == union.shape[0]
    assert outcome.result is not None and outcome.result.psu_ceiling == CEILING
    states, model, _ = _world()
    assert run_round(states, model, SETTINGS, 0, random_source=_seeded("ceiling")).psu_first_bound == CEILING


def test_a_union_that_outgrows_the_estimate_reruns_the_psu_with_a_larger_table_and_completes():
    """Round 1: each of 10 clients holds 40 ids (a union of about 400 of a ceiling of 1,500). Round 2:
    each holds 150 (a union of about 1,300): the first table, bound 1.25 x the first union (about 956
    cells with the 256 extra, peeling at most about 740 ids), cannot peel it; the rerun's table, sized
    from the failed table's occupancy, does, and the round ends with the exact union."""
    universe = 5000
    rng = np.random.default_rng(7)  # public test sets
    big = {p: np.sort(rng.choice(universe, 150, replace=False)).astype(np.uint64) for p in range(1, 11)}
    small = {p: np.sort(rng.choice(ids, 40, replace=False)) for p, ids in big.items()}
    settings = RoundSettings(universe=universe, max_set_size=150, dropout_fraction=0.2)
    states = _fixed_states(small)
    first = run_round(states, TinyModel(), settings, 1, random_source=_seeded("grow/1"))
    assert first.psu_first_bound == 1500 and first.psu_attempts == 1
    assert first.union_size == np.unique(np.concatenate(list(small.values()))).shape[0]
    for party, state in states.items():  # the clients' data grew; their ledgers and memos carry on
        state.client = FixedSetClient(party, big[party])
    second = run_round(states, TinyModel(), settings, 2, union_estimate=first.union_size, random_source=_seeded("grow/2"))
    assert second.psu_first_bound == math.ceil(PSU_HEADROOM * first.union_size)
    assert second.psu_attempts > 1 and second.result is not None
    bounds = second.result.psu_bounds
    assert bounds[0] == second.psu_first_bound and all(b > a for a, b in pairwise(bounds)) and bounds[-1] <= 1500
    assert second.union_size == np.unique(np.concatenate(list(big.values()))).shape[0]
    assert second.participants == 10


def test_a_first_table_with_every_cell_occupied_reruns_at_the_ceiling_and_completes_in_two_attempts():
    """A first bound of 10 for a union of about 1,300 (a cohort whose data grew ~30x): every cell of
    the table is occupied, which bounds the union only from below; the rerun goes straight to the
    ceiling, the largest table the clients accept, which always holds the union (before, 4x the
    bound, then a rerun from that table's occupancy: the third attempt, the clients' limit)."""
    universe = 5000
    rng = np.random.default_rng(7)  # public test sets
    sets = {p: np.sort(rng.choice(universe, 150, replace=False)).astype(np.uint64) for p in range(1, 11)}
    settings = RoundSettings(universe=universe, max_set_size=150, dropout_fraction=0.2)
    outcome = run_round(_fixed_states(sets), TinyModel(), settings, 1, psu_first_bound=10,
                        random_source=_seeded("saturated"))
    assert outcome.result is not None and outcome.result.psu_bounds == (10, 1500)
    assert outcome.psu_attempts == 2
    assert outcome.union_size == np.unique(np.concatenate(list(sets.values()))).shape[0]


def test_simulate_carries_each_rounds_union_into_the_next_first_table(capsys):
    argv = ["simulate", "--clients", "10", "--items", "30", "--universe", "500", "--dim", "3", "--rounds", "3",
            "--json", "--quiet"]
    assert main(argv) == 0
    rounds = json.loads(capsys.readouterr().out)["rounds"][1:]
    assert rounds[0]["psu_first_bound"] == 300  # no history: the ceiling, 10 x 30
    for earlier, later in pairwise(rounds):
        assert later["psu_first_bound"] == min(300, math.ceil(PSU_HEADROOM * earlier["union_size"]))
    assert main(argv + ["--psu-first-bound", "ceiling"]) == 0
    assert all(r["psu_first_bound"] == 300 for r in json.loads(capsys.readouterr().out)["rounds"][1:])


# -- snapshots ---------------------------------------------------------------------------------------


def test_a_client_of_a_round_with_a_small_first_table_restores_from_its_snapshot():
    states, model, _ = _world()
    server = SubmodelRoundServer(model, SETTINGS, sorted(states), 0, psu_first_bound=99)
    clients = _clients(states)
    start = server.start()[0].message
    party = start.recipient
    clients[party].receive(_wire(start))
    restored = SubmodelRoundClient.restore(clients[party].snapshot(), states[party], party)
    assert restored.stage is RoundClientStage.SKETCH_SENT and restored.snapshot() == clients[party].snapshot()


def test_a_snapshot_holding_a_table_above_the_ceiling_is_refused():
    """A report-sent snapshot (its PSU sum gone, so no table length to check it against) rewritten to
    a PSU table bound above the ceiling: no live client keeps such a round."""
    states, model, _ = _world()
    server = SubmodelRoundServer(model, SETTINGS, sorted(states), 0)
    clients = _clients(states)
    _drive(server, clients, RoundServerStage.AGGREGATING)
    party = min(clients)
    assert clients[party].stage is RoundClientStage.REPORT_SENT
    stored = decode_round(clients[party].snapshot())
    SubmodelRoundClient.restore(encode_round(stored), states[party], party)  # as written: restores
    params = stored.psu_params
    for bound, refused in ((CEILING - 50, False), (CEILING + 1, True)):
        forged = replace(stored, psu_params=PSUParameters(params.universe, bound, params.session_id, params.attempt))
        if refused:
            with pytest.raises(DecodeError, match="not one its round allows"):
                SubmodelRoundClient.restore(encode_round(forged), states[party], party)
        else:
            SubmodelRoundClient.restore(encode_round(forged), states[party], party)
