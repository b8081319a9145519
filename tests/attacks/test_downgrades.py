"""Downgrades a server (or a run config) asks for, each shown to work on a client whose policy is off and
to be refused by the real client: ``min_choosers = 1``, CPP1 / infinite epsilon, a less private
randomized response or a higher cap from the run config, a PSU over two parties, oversized tables, an
unmasking request with t - 1 alive holders."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from fedprivacy.accounting import replay
from fedprivacy.adapters.storage import ClientStore
from fedprivacy.errors import PolicyViolation, RemoteProtocolError
from fedprivacy.hazmat.field import Modulus
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.ldp import RRParameters
from fedprivacy.policy import ClientPolicy, weakened_policy
from fedprivacy.psu.params import PSUParameters
from fedprivacy.secagg import SecAggClient, SecAggConfig, SecAggServer
from fedprivacy.secagg.messages import UnmaskRequest
from fedprivacy.submodel.client import DeviceState, SubmodelRoundClient
from fedprivacy.submodel.messages import PublicSettings, RandomizedSetReport, RoundStart
from fedprivacy.submodel.settings import RoundSettings
from fedprivacy.submodel.stages import RoundClientStage

from .harness import SubmodelRoundAttack
from .workload import FixedSetClient, TinyModel

N = 8


def _states(policy, params=None, n=N):
    params = RRParameters.preset(2) if params is None else params
    return {p: DeviceState.new(FixedSetClient(p), params, policy=policy) for p in range(1, n + 1)}


def _run(states, settings):
    attack = SubmodelRoundAttack(states, TinyModel(), settings, random_source=lambda p: DeterministicRandomness(f"dg{p}"))
    attack.run()
    return attack


# -- min_choosers = 1 -------------------------------------------------------------------------------


def test_min_choosers_one_reveals_membership_of_rows_only_one_client_chose():
    settings = RoundSettings(universe=500, max_set_size=12, min_choosers=1)
    attack = _run(_states(weakened_policy()), settings)
    result = attack.server.result
    assert result is not None
    chooser_of: dict[int, list[int]] = {}
    for party, ids in result.chosen.items():
        for row in ids.tolist():
            chooser_of.setdefault(row, []).append(party)
    lonely = {row: parties[0] for row, parties in chooser_of.items() if len(parties) == 1}
    assert len(lonely) >= 10
    # The server's guess: the lone chooser holds the row iff the row moved (a positive count sum).
    right = sum((row in attack.server.model.applied) == (row in set(FixedSetClient(p).index_set().tolist()))
                for row, p in lonely.items())
    assert right == len(lonely)  # every guess right


def test_the_real_client_refuses_min_choosers_one():
    settings = RoundSettings(universe=500, max_set_size=12, min_choosers=1)
    attack = _run(_states(ClientPolicy()), settings)
    assert all(isinstance(e, PolicyViolation) and e.knob == "min_choosers" for e in attack.errors.values())
    assert len(attack.errors) == N and not any(attack.sent.values())


# -- CPP1: infinite epsilon -----------------------------------------------------------------------------


def test_cpp1_reports_the_real_set_from_a_weakened_client():
    attack = _run(_states(weakened_policy(), RRParameters.preset(1)), RoundSettings(universe=500, max_set_size=12))
    for party in range(1, N + 1):
        report = next(m for m in attack.sent[party] if isinstance(m, RandomizedSetReport))
        assert report.ids.tolist() == sorted(FixedSetClient(party).index_set().tolist())  # S''_i = S_i


def test_the_real_client_refuses_cpp1_and_says_so_in_its_ledger():
    states = _states(ClientPolicy(), RRParameters.preset(1))  # the preset carries its own allow_insecure flag
    attack = _run(states, RoundSettings(universe=500, max_set_size=12))
    assert all(isinstance(attack.errors[p], PolicyViolation) for p in states)
    assert not any(attack.sent.values())
    for state in states.values():
        assert [e.kind for e in state.ledger.events] == ["refusal"]
        assert "epsilon_inf = infinity" in state.ledger.events[0].parameters["reason"]


def test_a_policy_cannot_hold_cpp1_without_allow_insecure():
    with pytest.raises(Exception, match="allow_insecure"):
        ClientPolicy(rr_parameters=RRParameters.preset(1))
    assert ClientPolicy(rr_parameters=RRParameters.preset(1), allow_insecure=True).rr_parameters.p1 == 1


# -- suggestions from the run config (Flower): only more privacy --------------------------------------


def test_run_config_suggestions_are_taken_only_if_at_least_as_private():
    pytest.importorskip("flwr")
    from fedprivacy.adapters.flower._submodel_state import epsilon_cap_from_config, rr_parameters_from_config

    assert rr_parameters_from_config({}, {"fedprivacy-cpp": 4}) == RRParameters.preset(4)  # more private: taken
    assert rr_parameters_from_config({}, {}) == RRParameters.preset(2)  # the node's own default
    for downgrade in ({"fedprivacy-cpp": 1}, {"fedprivacy-epsilon": 5.0},
                      {"fedprivacy-p1": "1", "fedprivacy-p2": "0", "fedprivacy-p3": "1", "fedprivacy-p4": "0"}):
        with pytest.raises(PolicyViolation):
            rr_parameters_from_config({}, downgrade)
    # Only the node itself can opt in to CPP1 (the weakened client of the issue), in its node config.
    assert rr_parameters_from_config({"fedprivacy-allow-insecure": True, "fedprivacy-cpp": 1}, {}).p1 == 1
    with pytest.raises(Exception, match="allow.insecure"):
        rr_parameters_from_config({"fedprivacy-cpp": 1}, {})
    assert epsilon_cap_from_config({"fedprivacy-epsilon-cap": 2.0}, {"fedprivacy-epsilon-cap": 100.0}) == 2.0
    assert epsilon_cap_from_config({"fedprivacy-epsilon-cap": 2.0}, {"fedprivacy-epsilon-cap": 1.0}) == 1.0
    assert epsilon_cap_from_config({}, {}) == math.inf


def test_the_node_config_alone_sets_the_policy():
    pytest.importorskip("flwr")
    from fedprivacy.adapters.flower._submodel_state import policy_from_config

    policy = policy_from_config({"fedprivacy-min-choosers": 4, "fedprivacy-max-psu-attempts": 2})
    assert (policy.min_choosers, policy.max_psu_attempts) == (4, 2)
    with pytest.raises(Exception, match="min_choosers"):
        policy_from_config({"fedprivacy-min-choosers": 1})  # 1 only with allow-insecure
    assert policy_from_config({"fedprivacy-min-choosers": 1, "fedprivacy-allow-insecure": True}).min_choosers == 1


# -- a lowered cap -----------------------------------------------------------------------------------------


def test_a_lowered_cap_is_recorded_in_the_ledger_and_enforced(tmp_path):
    client = FixedSetClient(1)
    DeviceState.new(client, RRParameters.preset(2), epsilon_cap=10.0, store=ClientStore(tmp_path, "client-1"))
    state = DeviceState.new(client, RRParameters.preset(2), epsilon_cap=1.0, store=ClientStore(tmp_path, "client-1"))
    assert [e.kind for e in state.ledger.events] == ["cap"] and replay(state.ledger).cap == 1.0
    again = DeviceState.new(client, RRParameters.preset(2), epsilon_cap=50.0, store=ClientStore(tmp_path, "client-1"))  # up: ignored
    assert replay(again.ledger).cap == 1.0 and len(again.ledger.events) == 1
    # Enforced: CPP2's first report costs epsilon_1 ~ 2.02 > 1.0, so the budget filter refuses the round.
    states = {1: again, **{p: DeviceState.new(FixedSetClient(p), RRParameters.preset(2)) for p in range(2, N + 1)}}
    attack = _run(states, RoundSettings(universe=500, max_set_size=12))
    assert attack.clients[1].sat_out_reason == "budget"
    assert [e.kind for e in again.ledger.events if e.kind != "psu-attempt"] == ["cap", "refusal"]


# -- a PSU over two parties ----------------------------------------------------------------------------


def test_a_psu_over_two_parties_gives_the_other_partys_set_to_a_weakened_client():
    settings = RoundSettings(universe=500, max_set_size=12)
    attack = _run(_states(weakened_policy(min_parties=2), n=2), settings)
    union = set(attack.server.union.tolist())
    other = set(FixedSetClient(2).index_set().tolist())
    assert union - set(FixedSetClient(1).index_set().tolist()) <= other  # all the server needs is U minus one set
    assert union == other | set(FixedSetClient(1).index_set().tolist())  # U = S_1 u S_2


def test_the_real_client_refuses_a_psu_over_two_parties():
    attack = _run(_states(ClientPolicy(), n=2), RoundSettings(universe=500, max_set_size=12))
    assert {type(e) for e in attack.errors.values()} == {PolicyViolation}
    assert {e.knob for e in attack.errors.values()} <= {"min_psu_cohort", "min_parties"}
    assert not any(attack.sent.values())


# -- oversized tables ------------------------------------------------------------------------------------


def _round_start(n: int, universe: int, max_set_size: int) -> RoundStart:
    settings = PublicSettings(universe, max_set_size, 1.0, 100, Modulus.U64)
    params = PSUParameters(universe, min(n * max_set_size, universe), b"attack suite: big table session")
    config = SecAggConfig(tuple(range(1, n + 1)), params.vector_length, Modulus.P61, n - 1, n, b"attack suite: big table config!!")
    rows = SecAggConfig(tuple(range(1, n + 1)), 3, Modulus.U64, n - 1, n, b"attack suite: rows sum config!!!")
    return RoundStart(1, 0, settings, params, config, rows)


def _peak_bytes(policy: ClientPolicy, message: RoundStart) -> tuple[int, Exception | None]:
    """Client 1's peak allocation from the round start until it masks its sketch (the sketch is encoded
    once the PSU's shares are in), the other parties and the PSU's server played honestly."""
    from dataclasses import replace

    from fedprivacy.submodel.messages import Phase, PhaseMessage

    parties = message.psu_config.party_ids
    clients = {p: SubmodelRoundClient(DeviceState.new(FixedSetClient(p), RRParameters.preset(2), policy=policy), p,
                                      random_bytes=DeterministicRandomness(f"big{p}")) for p in parties}
    server = SecAggServer(message.psu_config)
    tracemalloc.start()
    try:
        replies = {p: clients[p].receive(replace(message, recipient=p)) for p in parties}
        for _ in range(2):  # keys, then shares; then client 1 encodes and masks its sketch
            for p in parties:
                for reply in replies[p]:
                    if reply.phase is Phase.PSU:
                        server.receive(reply.payload)
            out = server.close_stage()
            replies = {o.recipient: clients[o.recipient].receive(PhaseMessage(Phase.PSU, 0, o.message)) for o in out}
        error = None
    except Exception as exc:  # noqa: BLE001 -- the test reports what happened
        error = exc
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, error


def test_a_large_table_is_allocated_by_a_weakened_client_and_refused_by_a_bounded_one():
    message = _round_start(3, 1 << 31, 400_000)  # 1.2 M ids: a 25 MB sketch
    table_bytes = message.psu_params.vector_length * 8
    peak, error = _peak_bytes(weakened_policy(), message)
    assert error is None and peak >= table_bytes  # the server made it allocate the table
    peak, error = _peak_bytes(ClientPolicy(max_allocation_bytes=16 << 20), message)
    assert isinstance(error, PolicyViolation) and error.knob == "max_allocation_bytes"
    assert peak < table_bytes // 4


def test_the_small_round_start_that_asked_for_gigabytes_is_refused_before_allocating():
    message = _round_start(3, 1 << 40, 60_000_000)
    assert len(message.to_bytes()) < 320 and message.psu_params.vector_length * 8 > 5 << 30
    peak, error = _peak_bytes(ClientPolicy(), message)
    assert isinstance(error, PolicyViolation) and error.knob == "max_allocation_bytes"
    assert peak < 8 << 20


# -- the boundary: an unmasking request with exactly t - 1 alive holders -----------------------------------


@pytest.mark.parametrize("alive_holders", ["t - 1", "t"])
def test_an_unmasking_request_with_t_minus_one_alive_holders_is_refused(alive_holders):
    config = SecAggConfig.create(range(1, 11), 4, Modulus.U32, session_id=b"attack suite: t - 1 alive holder")
    t = config.threshold
    clients = {p: SecAggClient(config, p, random_bytes=DeterministicRandomness(f"tm{p}")) for p in config.party_ids}
    server = SecAggServer(config)
    for party, client in clients.items():
        for m in client.start():
            server.receive(m)
        client.submit_input(np.full(4, party, dtype=np.uint32))
    requests = {}
    while not requests:
        for item in server.close_stage():
            if isinstance(item.message, UnmaskRequest):
                requests[item.recipient] = item.message
                continue
            for reply in clients[item.recipient].receive(item.message):
                server.receive(reply)
    client = clients[1]
    holders = sorted(client.mask_peers)
    own = 1 if config.full_graph else 0
    alive_count = t - own - (1 if alive_holders == "t - 1" else 0)
    request = UnmaskRequest(1, tuple(holders[:alive_count]), tuple(holders[alive_count:]))
    if alive_holders == "t - 1":
        with pytest.raises(RemoteProtocolError, match="alive holders"):
            client.receive(request)
        assert client.stage.value == "aborted"
    else:
        (response,) = client.receive(request)
        assert len(response.seed_shares) == t and client.stage is not RoundClientStage.ABORTED
