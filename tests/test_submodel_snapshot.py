"""Snapshots of the submodel round client (protocols/submodel/spec.md, "Snapshot"): canonical bytes,
restored at every stage to the same round, held to the checks of a live client, stale, foreign and
tampered snapshots refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from fedprivacy.errors import DecodeError, LocalProtocolError, PolicyViolation
from fedprivacy.hazmat.field import Modulus
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.ldp import RRParameters
from fedprivacy.policy import ClientPolicy
from fedprivacy.psu.params import PSUParameters
from fedprivacy.secagg import Adversary, make_identities
from fedprivacy.submodel._snapshot import SNAPSHOT_TYPE, StoredRound, decode_round, encode_round
from fedprivacy.submodel.client import DeviceState, SubmodelRoundClient
from fedprivacy.submodel.demo import init_model, synthetic_workload
from fedprivacy.submodel.messages import PublicSettings, UnionBroadcast, decode_submodel_message
from fedprivacy.submodel.reference import ReferenceModel, ReferenceTrainer
from fedprivacy.submodel.server import SubmodelRoundServer
from fedprivacy.submodel.settings import RoundSettings
from fedprivacy.submodel.stages import RoundClientStage, RoundServerStage

UNIVERSE = 500
SESSION = b"submodel snapshot test session!!"


def _world(malicious: bool, clients: int = 6):
    workload = synthetic_workload(clients=clients, universe=UNIVERSE, items_per_user=30, seed=2)
    identities, trust = make_identities([c.client_id for c in workload.clients], DeterministicRandomness("snap/ids"))
    states = {c.client_id: DeviceState.new(ReferenceTrainer(c), RRParameters.preset(2),
                                           identity=identities[c.client_id] if malicious else None,
                                           trust=trust if malicious else None)
              for c in workload.clients}
    model = ReferenceModel(*init_model(np.arange(UNIVERSE, dtype=np.uint64), 4, seed=1))
    settings = RoundSettings(universe=UNIVERSE, max_set_size=30, dropout_fraction=0.2,
                             adversary=Adversary.MALICIOUS if malicious else Adversary.SEMI_MALICIOUS)
    server = SubmodelRoundServer(model, settings, sorted(states), 3, session_id=SESSION,
                                 trust=trust if malicious else None)
    sources = {p: DeterministicRandomness(f"snap-{p}") for p in states}
    clients = {p: SubmodelRoundClient(s, p, random_bytes=sources[p]) for p, s in states.items()}
    return server, clients, states, sources, model


def _run(server, clients, before=None, drop=None):
    """Drive a round through bytes; ``before(party)`` runs before each delivery. Returns the transcript."""
    transcript = []
    outbound = server.start()
    while server.stage not in (RoundServerStage.COMPLETED, RoundServerStage.ABORTED):
        for item in outbound:
            if before is not None:
                before(item.recipient)
            data = item.message.to_bytes()
            replies = clients[item.recipient].receive(decode_submodel_message(data))
            transcript.append((item.recipient, data, [r.to_bytes() for r in replies]))
            if drop is not None and drop(item.recipient, clients[item.recipient]):
                continue
            for reply in replies:
                server.receive(decode_submodel_message(reply.to_bytes()))
        outbound = server.close_stage()
    return transcript


@pytest.mark.parametrize("malicious", [False, True], ids=["semi-malicious", "malicious"])
def test_a_client_snapshotted_and_restored_before_every_message_finishes_the_round_as_an_uninterrupted_one(
        malicious, monkeypatch):
    """Every stage a client passes through is snapshotted, restored into a fresh object (over the same
    state and randomness stream, as a host does) and driven on: the same messages, the same result."""
    import fedprivacy.secagg.params as secagg_params

    monkeypatch.setattr(secagg_params.os, "urandom", lambda n: bytes(range(n)))  # the rows' session id, both runs
    server, clients, _, _, model = _world(malicious)
    plain = _run(server, clients)
    server2, clients2, states2, sources2, model2 = _world(malicious)
    stages_seen = set()

    def swap(party):
        data = clients2[party].snapshot()
        restored = SubmodelRoundClient.restore(data, states2[party], party, random_bytes=sources2[party],
                                               round_index=None if clients2[party].stage is RoundClientStage.CREATED else 3)
        assert restored.snapshot() == data  # canonical: one encoding per state
        stages_seen.add(restored.stage)
        clients2[party] = restored

    assert _run(server2, clients2, before=swap) == plain
    assert stages_seen == {RoundClientStage.CREATED, RoundClientStage.SKETCH_SENT, RoundClientStage.REPORT_SENT,
                           RoundClientStage.UPLOADING}
    assert server2.result is not None and server.result is not None
    assert server2.result.contributors == server.result.contributors == frozenset(clients)
    assert all(np.array_equal(model.table[r], model2.table[r]) for r in model.table)
    for party, client in clients2.items():  # terminal stages snapshot and restore too
        assert client.stage is RoundClientStage.COMPLETED
        restored = SubmodelRoundClient.restore(client.snapshot(), states2[party], party, round_index=3)
        assert restored.stage is RoundClientStage.COMPLETED and restored.snapshot() == client.snapshot()
        assert np.array_equal(restored.chosen, clients[party].chosen)


def test_sat_out_clients_snapshot_with_their_reason():
    server, clients, states, sources, _ = _world(False)
    oversized = DeviceState.new(ReferenceTrainer(synthetic_workload(clients=6, universe=UNIVERSE, items_per_user=60,
                                                                   seed=2).clients[0]), RRParameters.preset(2))
    clients[1] = SubmodelRoundClient(oversized, 1, random_bytes=sources[1])
    states[1] = oversized
    _run(server, clients)
    assert clients[1].stage is RoundClientStage.SAT_OUT and clients[1].sat_out_reason == "oversized"
    restored = SubmodelRoundClient.restore(clients[1].snapshot(), oversized, 1, round_index=3)
    assert restored.sat_out_reason == "oversized" and restored.snapshot() == clients[1].snapshot()


def _mid_round(malicious=False):
    """A world whose clients all sent their sketches (stage sketch-sent, the union not yet sent)."""
    server, clients, states, sources, _ = _world(malicious)
    outbound = server.start()
    while server.stage is RoundServerStage.PSU:
        held = outbound
        for item in outbound:
            for reply in clients[item.recipient].receive(decode_submodel_message(item.message.to_bytes())):
                server.receive(decode_submodel_message(reply.to_bytes()))
        outbound = server.close_stage()
    return server, clients, states, sources, outbound, held


def test_a_foreign_or_other_rounds_snapshot_is_refused():
    _, clients, states, _, _, _ = _mid_round()
    data = clients[1].snapshot()
    with pytest.raises(LocalProtocolError, match="party 1, not of party 2"):
        SubmodelRoundClient.restore(data, states[2], 2)
    with pytest.raises(LocalProtocolError, match="round 3, not of round 4"):
        SubmodelRoundClient.restore(data, states[1], 1, round_index=4)
    assert SubmodelRoundClient.restore(data, states[1], 1, round_index=3).stage is RoundClientStage.SKETCH_SENT


def test_a_restored_client_is_held_to_its_policy():
    _, clients, states, _, _, _ = _mid_round()
    data = clients[1].snapshot()
    state = states[1]
    stricter = DeviceState(state.client, state.params, state.ledger, state.memo,
                           policy=ClientPolicy(min_choosers=5))
    with pytest.raises(PolicyViolation, match="min_choosers"):
        SubmodelRoundClient.restore(data, stricter, 1, round_index=3)
    fewer_parties = DeviceState(state.client, state.params, state.ledger, state.memo,
                                policy=ClientPolicy(min_parties=50))
    with pytest.raises(PolicyViolation):
        SubmodelRoundClient.restore(data, fewer_parties, 1, round_index=3)


def test_tampered_snapshot_bytes_raise_only_decode_error():
    _, clients, states, _, _, _ = _mid_round()
    data = clients[1].snapshot()
    assert data[6] == SNAPSHOT_TYPE
    with pytest.raises(DecodeError):
        decode_submodel_message(data)  # never a message
    for cut in (7, 20, len(data) // 2, len(data) - 1):
        with pytest.raises(DecodeError):
            SubmodelRoundClient.restore(data[:cut], states[1], 1)
    with pytest.raises(DecodeError):
        SubmodelRoundClient.restore(data + b"\x00", states[1], 1)
    rng = np.random.default_rng(7)  # (positions to flip, not secrets)
    refused = 0
    for position in rng.integers(7, len(data), 200):
        tampered = bytearray(data)
        tampered[position] ^= 0x5A
        try:
            restored = SubmodelRoundClient.restore(bytes(tampered), states[1], 1)
        except (DecodeError, LocalProtocolError, PolicyViolation):
            refused += 1
            continue
        except Exception as exc:  # anything else is a finding
            raise AssertionError(f"byte {position}: {type(exc).__name__}: {exc}") from exc
        assert restored.snapshot() == bytes(tampered)  # what decodes is canonical
    # Most bytes are keys, shares and the sketch's ids: a flip there decodes (the bytes are not
    # authenticated: the host's storage is trusted, spec "Snapshot"); the structure is checked.
    assert refused > 20


def test_the_ledger_refuses_a_stale_snapshot_that_would_report_twice(monkeypatch):
    """Attack: a server that got a node to roll back to its sketch-sent snapshot (a host fault, spec
    §14.6) sends the union again, hoping for a second randomized report of the same round. With the
    ledger check removed the restored client reports twice (two releases of one round on its ledger);
    the real restore refuses the stale snapshot."""
    _, clients, states, _, outbound, _ = _mid_round()
    stale = clients[1].snapshot()
    union = next(decode_submodel_message(i.message.to_bytes()) for i in outbound if i.recipient == 1)
    assert isinstance(union, UnionBroadcast)
    first = clients[1].receive(union)[0]
    monkeypatch.setattr(SubmodelRoundClient, "_check_ledger", lambda self, stored: None)
    weakened = SubmodelRoundClient.restore(stale, states[1], 1, round_index=3, random_bytes=DeterministicRandomness("x"))
    second = weakened.receive(union)[0]
    releases = [e for e in states[1].ledger.events if e.round_index == 3 and e.kind == "release"]
    assert len(releases) == 2 and not np.array_equal(first.ids, second.ids)  # the attack worked
    monkeypatch.undo()
    with pytest.raises(LocalProtocolError, match="stale"):
        SubmodelRoundClient.restore(stale, states[1], 1, round_index=3)


def test_a_stale_sketch_of_an_earlier_attempt_is_refused():
    _, clients, states, _, _, _ = _mid_round()
    data = clients[1].snapshot()
    from fedprivacy.accounting import psu_attempt_event

    psu_attempt_event(states[1].ledger, 3, 1)  # the client joined attempt 1 after the snapshot
    with pytest.raises(LocalProtocolError, match="another PSU attempt"):
        SubmodelRoundClient.restore(data, states[1], 1, round_index=3)


def test_malicious_mode_restores_the_joint_pair_and_needs_the_identity():
    _, clients, states, _, _, _ = _mid_round(malicious=True)
    data = clients[1].snapshot()
    assert states[1].identity is not None and states[1].identity.signing_key not in data
    restored = SubmodelRoundClient.restore(data, states[1], 1, round_index=3)
    assert restored._rows.joint_advertisement[0] == "verifying" and restored._psu.joint_advertisement[0] == "covered"
    state = states[1]
    bare = DeviceState(state.client, state.params, state.ledger, state.memo, policy=state.policy)
    with pytest.raises(LocalProtocolError):
        SubmodelRoundClient.restore(data, bare, 1, round_index=3)
    # The PSU sum of party 1's snapshot replaced by party 2's (the same round): another party's sum.
    other = decode_round(clients[2].snapshot())
    mine = decode_round(data)
    mixed = encode_round(StoredRound(**{**vars(mine), "psu": other.psu}))
    with pytest.raises((LocalProtocolError, DecodeError)):
        SubmodelRoundClient.restore(mixed, states[1], 1, round_index=3)


# -- the format alone -------------------------------------------------------------------------------------


_SUM = st.binary(min_size=0, max_size=40)
_IDS = st.lists(st.integers(0, UNIVERSE - 1), max_size=30, unique=True).map(lambda v: np.array(sorted(v), dtype=np.uint64))


@st.composite
def _stored(draw):
    stage = draw(st.sampled_from([s for s in RoundClientStage if s is not RoundClientStage.ABORTED]))
    seconds = draw(st.floats(0, 1e6, allow_nan=False))
    if stage is RoundClientStage.CREATED:
        return StoredRound(draw(st.integers(0, 2**32 - 1)), stage, None, 0.0)
    reason = None
    if stage is RoundClientStage.SAT_OUT:
        reason = draw(st.sampled_from(["oversized", "budget", "update-budget"]))
    elif stage is RoundClientStage.SKETCH_SENT:
        reason = draw(st.sampled_from([None, "oversized"]))
    settings = PublicSettings(UNIVERSE, 30, draw(st.floats(0.01, 10)), draw(st.integers(1, 100)), Modulus.U64,
                              draw(st.integers(1, 5)))
    params = PSUParameters(UNIVERSE, draw(st.integers(1, UNIVERSE)), bytes(32), draw(st.integers(0, 2)))
    holds = {RoundClientStage.SKETCH_SENT: (True, True, False), RoundClientStage.SAT_OUT: (False, False, reason == "update-budget")}
    psu, rows, chosen = holds.get(stage, (False, True, True))
    return StoredRound(draw(st.integers(0, 2**32 - 1)), stage, reason, seconds, draw(st.integers(0, 2**64 - 1)), settings,
                       params, draw(st.integers(0, 2**64 - 1)), np.zeros(0, np.uint64) if reason == "oversized" else draw(_IDS),
                       draw(_SUM) if psu else None, draw(_SUM) if rows else None, draw(_IDS) if chosen else None)


@given(_stored())
def test_the_encoding_round_trips_and_is_canonical(stored):
    data = encode_round(stored)
    again = decode_round(data)
    assert encode_round(again) == data
    assert (again.stage, again.round_index, again.psu, again.rows) == (stored.stage, stored.round_index, stored.psu, stored.rows)
    for name in ("real_ids", "chosen"):
        a, b = getattr(again, name), getattr(stored, name)
        assert (a is None and b is None) or np.array_equal(a, b)
