"""The secure-aggregation state machines: dropouts at every stage, aborts, refusals, misuse."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fedprivacy.errors import (
    InvalidCiphertext,
    InvalidParameters,
    LocalProtocolError,
    RemoteProtocolError,
    RoundAborted,
)
from fedprivacy.hazmat.field import P61, Modulus
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.secagg import (
    ClientStage,
    DropoutSchedule,
    SecAggStep,
    SecAggClient,
    SecAggServer,
    ServerStage,
    run_secagg_round,
)
from fedprivacy.secagg.messages import (
    AdvertiseKeys,
    KeyBroadcast,
    MaskedInput,
    RoutedShares,
    UnmaskRequest,
    UnmaskResponse,
    decode_message,
)
from fedprivacy.secagg.server import IgnoredReason

from .helpers import config, plain_sum, random_inputs, PROTOCOL_POLICY


@pytest.mark.parametrize("modulus", list(Modulus))
@pytest.mark.parametrize("stage", list(SecAggStep))
def test_dropouts_at_each_stage_sum_exactly_the_survivors(modulus, stage):
    cfg = config(range(1, 8), dim=9, modulus=modulus, threshold=4)
    inputs = random_inputs(cfg, seed=int(modulus))
    report = run_secagg_round(cfg, inputs, DropoutSchedule({2: stage, 5: stage}), policy=PROTOCOL_POLICY)
    assert report.aborted is None
    expected_ids = set(cfg.party_ids) - ({2, 5} if stage is not SecAggStep.UNMASK else set())
    assert report.input_ids == expected_ids
    assert [int(v) for v in report.result] == plain_sum(inputs, expected_ids, modulus)


def test_harary_graph_with_mixed_dropouts():
    cfg = config(range(1, 21), dim=5, neighbours=8, threshold=4)
    inputs = random_inputs(cfg, seed=3)
    drops = {1: SecAggStep.ADVERTISE, 4: SecAggStep.SHARE, 9: SecAggStep.INPUT, 14: SecAggStep.UNMASK}
    report = run_secagg_round(cfg, inputs, DropoutSchedule(drops), policy=PROTOCOL_POLICY)
    assert report.aborted is None
    assert report.input_ids == set(cfg.party_ids) - {1, 4, 9}
    assert [int(v) for v in report.result] == plain_sum(inputs, report.input_ids, Modulus.U32)


def test_late_messages_from_dropped_parties_are_ignored_not_merged():
    cfg = config(range(1, 9), threshold=3)
    inputs = random_inputs(cfg)
    drops = {2: SecAggStep.ADVERTISE, 3: SecAggStep.SHARE, 4: SecAggStep.INPUT, 5: SecAggStep.UNMASK}
    report = run_secagg_round(cfg, inputs, DropoutSchedule(drops, late=frozenset({2, 3, 4, 5})), policy=PROTOCOL_POLICY)
    assert report.aborted is None
    assert report.input_ids == {1, 5, 6, 7, 8}
    assert [int(v) for v in report.result] == plain_sum(inputs, {1, 5, 6, 7, 8}, Modulus.U32)
    assert sorted((m.party_id, m.reason) for m in report.ignored) == [
        (2, IgnoredReason.LATE),
        (3, IgnoredReason.LATE),
        (4, IgnoredReason.LATE),
        (5, IgnoredReason.LATE),
    ]


@pytest.mark.parametrize(
    "stage, where", [(SecAggStep.ADVERTISE, "advertise-keys"), (SecAggStep.SHARE, "share-keys"),
                     (SecAggStep.INPUT, "masked-input"), (SecAggStep.UNMASK, "unmasking")]
)
def test_fewer_than_threshold_aborts_with_no_output(stage, where):
    cfg = config(range(1, 6), threshold=4)
    report = run_secagg_round(cfg, random_inputs(cfg), DropoutSchedule({1: stage, 2: stage}), policy=PROTOCOL_POLICY)
    assert report.result is None
    assert isinstance(report.aborted, RoundAborted)
    assert report.aborted.stage == where


def _through_key_sharing(cfg, seeded=False):
    """Drive a round by hand through advertise and share; returns (server, clients, routed shares)."""
    server = SecAggServer(cfg)
    clients = {
        p: SecAggClient(cfg, p, **({"random_bytes": DeterministicRandomness(f"c{p}")} if seeded else {}), policy=PROTOCOL_POLICY)
        for p in cfg.party_ids
    }
    for client in clients.values():
        for m in client.start():
            server.receive(m)
    for out in server.close_stage():
        for m in clients[out.recipient].receive(out.message):
            server.receive(m)
    return server, clients, server.close_stage()


def _advance_to_unmask(cfg, victim: int):
    """Run a full-graph round by hand up to the unmasking request of ``victim``."""
    server, clients, routed = _through_key_sharing(cfg, seeded=True)
    for out in routed:
        clients[out.recipient].receive(out.message)
        for m in clients[out.recipient].submit_input(np.zeros(cfg.dim, dtype=np.uint32)):
            server.receive(m)
    requests = {o.recipient: o.message for o in server.close_stage()}
    return server, clients, requests


def test_client_refuses_overlapping_alive_and_dropped():
    cfg = config(range(1, 6), threshold=3)
    _, clients, requests = _advance_to_unmask(cfg, 1)
    request = requests[1]
    bad = UnmaskRequest(1, request.alive_ids, (request.alive_ids[0],))
    with pytest.raises(RemoteProtocolError, match="both alive and dropped"):
        clients[1].receive(bad)
    assert clients[1].stage is ClientStage.ABORTED
    with pytest.raises(LocalProtocolError):  # nothing more comes out of an aborted client
        clients[1].receive(request)


@pytest.mark.parametrize(
    "alive, dropped, match",
    [
        ((2, 3, 4, 9), (), "outside"),
        ((2, 3), (), "contradicts"),
        ((1, 2, 3), (4, 5), "itself"),
        ((), (2, 3, 4, 5), "alive holders"),
    ],
)
def test_client_refuses_inconsistent_requests(alive, dropped, match):
    cfg = config(range(1, 6), threshold=3)
    _, clients, _ = _advance_to_unmask(cfg, 1)
    with pytest.raises(RemoteProtocolError, match=match):
        clients[1].receive(UnmaskRequest(1, alive, dropped))


def test_client_never_releases_both_share_kinds_on_repeat():
    cfg = config(range(1, 6), threshold=3)
    _, clients, requests = _advance_to_unmask(cfg, 1)
    first = clients[1].receive(requests[1])
    assert clients[1].receive(requests[1]) == first  # an identical repeat gets the same answer
    flipped = UnmaskRequest(1, (2, 3, 4), (5,))
    with pytest.raises(RemoteProtocolError, match="different split"):
        clients[1].receive(flipped)


def test_tampered_share_ciphertext_aborts_the_recipient_only():
    cfg = config(range(1, 6), threshold=3)
    inputs = random_inputs(cfg)

    def tamper(recipient, data):
        if recipient == 3 and decode_message(data).__class__ is RoutedShares:
            return data[:-3] + bytes([data[-3] ^ 0x80]) + data[-2:]
        return data

    report = run_secagg_round(cfg, inputs, tamper=tamper, policy=PROTOCOL_POLICY)
    assert isinstance(report.client_errors[3], InvalidCiphertext)
    assert report.input_ids == {1, 2, 4, 5}
    assert [int(v) for v in report.result] == plain_sum(inputs, {1, 2, 4, 5}, Modulus.U32)


def test_share_bound_to_session_and_parties():
    """A ciphertext replayed under another sender id fails authentication."""
    cfg = config(range(1, 5), threshold=3)

    def swap(recipient, data):
        message = decode_message(data)
        if isinstance(message, RoutedShares) and recipient == 1:
            (s1, c1), (s2, c2), rest = message.ciphertexts[0], message.ciphertexts[1], message.ciphertexts[2:]
            return RoutedShares(1, ((s1, c2), (s2, c1), *rest)).to_bytes()
        return data

    report = run_secagg_round(cfg, random_inputs(cfg), tamper=swap, policy=PROTOCOL_POLICY)
    assert isinstance(report.client_errors[1], InvalidCiphertext)


def test_client_rejects_reflected_or_foreign_keys():
    cfg = config(range(1, 5), threshold=3)
    client = SecAggClient(cfg, 1, policy=PROTOCOL_POLICY)
    (advert,) = client.start()
    peers = tuple(
        __import__("fedprivacy.secagg.messages", fromlist=["PeerKeys"]).PeerKeys(p, advert.channel_public_key, bytes([p]) * 32)
        for p in (2, 3, 4)
    )
    with pytest.raises(RemoteProtocolError, match="distinct"):
        client.receive(KeyBroadcast(1, peers))
    assert client.stage is ClientStage.ABORTED


def test_client_rejects_messages_for_others_and_wrong_stage():
    cfg = config(range(1, 5), threshold=3)
    client = SecAggClient(cfg, 1, policy=PROTOCOL_POLICY)
    with pytest.raises(RemoteProtocolError):
        client.receive(KeyBroadcast(1, ()))  # before start: wrong stage
    assert client.stage is ClientStage.ABORTED
    other = SecAggClient(cfg, 2, policy=PROTOCOL_POLICY)
    other.start()
    with pytest.raises(RemoteProtocolError, match="another party"):
        other.receive(KeyBroadcast(3, ()))


def test_local_misuse_leaves_state_unchanged():
    cfg = config(range(1, 5), threshold=3)
    client = SecAggClient(cfg, 1, policy=PROTOCOL_POLICY)
    client.start()
    with pytest.raises(LocalProtocolError):
        client.start()
    assert client.stage is ClientStage.KEYS_ADVERTISED
    with pytest.raises(InvalidParameters):
        client.submit_input(np.zeros(cfg.dim + 1, dtype=np.uint32))
    with pytest.raises(InvalidParameters):
        client.submit_input(np.full(cfg.dim, 0.5))
    with pytest.raises(InvalidParameters):
        client.submit_input(np.full(cfg.dim, -1))
    assert client.stage is ClientStage.KEYS_ADVERTISED
    client.submit_input(np.ones(cfg.dim, dtype=np.uint32))
    with pytest.raises(LocalProtocolError):
        client.submit_input(np.ones(cfg.dim, dtype=np.uint32))
    with pytest.raises(InvalidParameters):
        SecAggClient(cfg, 99, policy=PROTOCOL_POLICY)


def test_prime_field_input_must_be_reduced():
    cfg = config(range(1, 5), modulus=Modulus.P61, threshold=3)
    client = SecAggClient(cfg, 1, policy=PROTOCOL_POLICY)
    with pytest.raises(InvalidParameters):
        client.submit_input(np.full(cfg.dim, (1 << 61) - 1, dtype=np.uint64))


def test_early_input_is_masked_when_shares_arrive():
    cfg = config(range(1, 5), threshold=3)
    server = SecAggServer(cfg)
    clients = {p: SecAggClient(cfg, p, policy=PROTOCOL_POLICY) for p in cfg.party_ids}
    for p, c in clients.items():
        c.submit_input(np.full(cfg.dim, p, dtype=np.uint32))
        for m in c.start():
            server.receive(m)
    for out in server.close_stage():
        for m in clients[out.recipient].receive(out.message):
            server.receive(m)
    for out in server.close_stage():
        (masked,) = clients[out.recipient].receive(out.message)
        assert isinstance(masked, MaskedInput)
        server.receive(masked)
    for out in server.close_stage():
        for m in clients[out.recipient].receive(out.message):
            server.receive(m)
    server.close_stage()
    assert server.stage is ServerStage.COMPLETED
    assert server.result.tolist() == [10] * cfg.dim


def test_server_ignores_junk_duplicates_and_unknown_parties():
    cfg = config(range(1, 5), threshold=3)
    server = SecAggServer(cfg)
    client = SecAggClient(cfg, 1, policy=PROTOCOL_POLICY)
    (advert,) = client.start()
    server.receive(advert)
    server.receive(advert)  # duplicate
    server.receive(AdvertiseKeys(77, b"a" * 32, b"b" * 32))  # unknown party
    server.receive(AdvertiseKeys(2, advert.channel_public_key, b"c" * 32))  # reused key
    server.receive(MaskedInput(1, Modulus.U32, np.zeros(cfg.dim, dtype=np.uint32)))  # wrong stage
    server.receive(UnmaskResponse(1, (), ()))
    reasons = [m.reason for m in server.ignored]
    assert reasons == [
        IgnoredReason.DUPLICATE,
        IgnoredReason.UNKNOWN_PARTY,
        IgnoredReason.INVALID,
        IgnoredReason.LATE,
        IgnoredReason.LATE,
    ]
    assert server.advertised_ids == {1}
    with pytest.raises(RoundAborted):
        server.close_stage()
    assert server.stage is ServerStage.ABORTED
    with pytest.raises(LocalProtocolError):
        server.close_stage()
    with pytest.raises(LocalProtocolError):
        _ = server.result


def test_server_rejects_inconsistent_key_shares():
    """A holder that sends a wrong mask-key share makes the rebuilt key mismatch: clean abort."""
    cfg = config(range(1, 6), threshold=3)
    inputs = random_inputs(cfg)
    server, clients, routed = _through_key_sharing(cfg)
    for out in routed:
        msgs = clients[out.recipient].receive(out.message)
        if out.recipient != 5:  # party 5 drops before masked input
            msgs = clients[out.recipient].submit_input(inputs[out.recipient])
            for m in msgs:
                server.receive(m)
    for out in server.close_stage():
        (response,) = clients[out.recipient].receive(out.message)
        if out.recipient == 1:
            owner, limbs = response.key_shares[0]
            response = UnmaskResponse(1, response.seed_shares, ((owner, (limbs[0] ^ 1, *limbs[1:])),))
        server.receive(response)
    with pytest.raises(RoundAborted, match="party 5"):
        server.close_stage()


def test_low_order_keys_are_refused_and_never_crash_the_server():
    cfg = config(range(1, 5), threshold=3)
    server = SecAggServer(cfg)
    server.receive(AdvertiseKeys(1, bytes(32), b"\x09" + bytes(31)))  # the all-zero point is low order
    assert server.ignored[-1].reason is IgnoredReason.INVALID and server.advertised_ids == frozenset()


def test_server_rejects_direct_objects_with_bad_words():
    cfg = config(range(1, 5), modulus=Modulus.P61, threshold=3)
    server, _, _ = _through_key_sharing(cfg)
    server.receive(MaskedInput(1, Modulus.P61, np.full(cfg.dim, (1 << 64) - 1, dtype=np.uint64)))
    server.receive(MaskedInput(2, Modulus.P61, np.full(cfg.dim, 0.5)))
    # A decoded input was range-checked by the decoder; a copy with another vector is checked again.
    decoded = decode_message(MaskedInput(3, Modulus.P61, np.full(cfg.dim, P61 - 1, dtype=np.uint64)).to_bytes())
    assert decoded.in_range
    server.receive(dataclasses.replace(decoded, vector=np.full(cfg.dim, P61, dtype=np.uint64)))
    assert [m.reason for m in server.ignored[-3:]] == [IgnoredReason.INVALID] * 3
    assert server.input_ids == frozenset()
    server.receive(decoded)
    assert server.input_ids == frozenset({3})


@pytest.mark.parametrize("seed", range(4))
def test_sparse_graph_unmasking_where_each_owner_has_its_own_holder_set(seed):
    """On a Harary graph every owner's t chosen holders differ (its own neighbourhood): the server's
    batched reconstruction must pick, per owner, the t smallest holders that answered for it."""
    cfg = config(range(1, 31), dim=6, neighbours=10, threshold=4)
    inputs = random_inputs(cfg, seed=seed)
    picked = [int(p) for p in np.random.default_rng(seed).choice(np.arange(1, 31), size=6, replace=False)]
    drops = {p: SecAggStep.INPUT for p in picked[:3]} | {p: SecAggStep.UNMASK for p in picked[3:]}
    report = run_secagg_round(cfg, inputs, DropoutSchedule(drops), policy=PROTOCOL_POLICY)
    assert report.aborted is None
    assert report.input_ids == set(cfg.party_ids) - set(picked[:3])
    assert [int(v) for v in report.result] == plain_sum(inputs, report.input_ids, Modulus.U32)
