"""Malicious-mode secure aggregation (spec §14): identities, signed keys, the consistency check,
canonical key comparison, stale snapshots, and the attacks a malicious server would run.

The attacks a malicious server runs against this mode are in ``tests/attacks/test_malicious_mode.py``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fedprivacy.errors import DecodeError, InvalidParameters, LocalProtocolError, PolicyViolation, RemoteProtocolError
from fedprivacy.hazmat.identity import Signer, Verifier
from fedprivacy.hazmat.kex import canonical_public_key, public_key
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.policy import ClientPolicy, weakened_policy
from fedprivacy.secagg import (
    Adversary,
    ClientStage,
    DropoutSchedule,
    SecAggStep,
    SecAggClient,
    SecAggConfig,
    SecAggServer,
    ServerStage,
    TrustStore,
    find_graph_parameters,
    make_identities,
    run_secagg_round,
)
from fedprivacy.secagg.client import start_jointly
from fedprivacy.secagg.identity import advertisement_statement, consistency_statement
from fedprivacy.secagg.messages import (
    AdvertiseKeys,
    ConsistencyRequest,
    ConsistencyResponse,
    KeyBroadcast,
    MessageType,
    PeerKeys,
    UnmaskRequest,
    UnmaskResponse,
    decode_message,
)
from fedprivacy.secagg.server import IgnoredReason

from .helpers import SESSION, plain_sum, random_inputs


def malicious_config(n=7, threshold=5, neighbours=None, round_index=0, dim=4, session=SESSION):
    ids = tuple(range(1, n + 1))
    k = n - 1 if neighbours is None else neighbours
    return SecAggConfig(ids, dim, 1, k, threshold, session, round_index, malicious=True)


def identities_for(cfg, name="malicious-tests"):
    return make_identities(cfg.party_ids, DeterministicRandomness(f"{name}/identities"))


# -- the mode itself ----------------------------------------------------------------------------------


def test_malicious_mode_is_part_of_the_config_and_its_digest():
    plain = SecAggConfig(tuple(range(1, 8)), 4, 1, 6, 5, SESSION)
    mal = dataclasses.replace(plain, malicious=True)
    assert plain.encode()[6] == 0 and mal.encode()[6] == 16
    assert plain.digest != mal.digest
    assert SecAggConfig.decode(mal.encode()) == mal and SecAggConfig.decode(mal.encode()).malicious
    assert not SecAggConfig.decode(plain.encode()).malicious
    created = SecAggConfig.create(range(1, 41), 4, adversary=Adversary.MALICIOUS)
    assert created.malicious
    assert not SecAggConfig.create(range(1, 41), 4, adversary="semi-malicious").malicious


def test_the_consistency_quorum_is_part_of_a_malicious_full_graph_config():
    """Spec §14.2: a malicious full-graph config carries its quorum (type 16), a majority; 0 elsewhere."""
    full = malicious_config(7, threshold=6)
    assert full.quorum == 6  # left 0: t, the count required before the quorum existed
    lower = dataclasses.replace(full, quorum=4)
    assert lower.encode()[6] == 16 and lower.encode()[-4:] == (4).to_bytes(4, "big") and lower.digest != full.digest
    assert SecAggConfig.decode(lower.encode()) == lower
    for bad in (3, 8, -1):  # not a majority of 7 parties, or more than there are
        with pytest.raises(InvalidParameters, match="quorum"):
            dataclasses.replace(full, quorum=bad)
    sparse = malicious_config(16, threshold=5, neighbours=8)
    assert sparse.quorum == 0 and dataclasses.replace(sparse, quorum=9).quorum == 0
    assert dataclasses.replace(lower, malicious=False).quorum == 0
    # canonical bytes only: a full graph with quorum 0, a sparse one with a quorum, the retired type 10
    with pytest.raises(DecodeError, match="quorum"):
        SecAggConfig.decode(lower.encode()[:-4] + bytes(4))
    with pytest.raises(DecodeError, match="quorum"):
        SecAggConfig.decode(sparse.encode()[:-4] + (9).to_bytes(4, "big"))
    with pytest.raises(DecodeError, match="retired"):
        SecAggConfig.decode(lower.encode()[:6] + bytes([10]) + lower.encode()[7:-4])
    # the search sets the majority over ceil(gamma n) corrupt parties: n = 100, gamma = 0.05 -> 53 (t = 90)
    created = SecAggConfig.create(range(1, 101), 4, full_graph=True, adversary=Adversary.MALICIOUS)
    assert (created.threshold, created.quorum) == (90, 53)
    assert SecAggConfig.create(range(1, 101), 4, adversary=Adversary.MALICIOUS).quorum == 0  # sparse


def test_a_client_refuses_a_quorum_below_its_own_majority():
    """The quorum is checked against the client's own corrupt fraction, never the server's."""
    cfg = dataclasses.replace(malicious_config(10, threshold=9), quorum=6)  # a majority for c <= 1
    identities, trust = identities_for(cfg)
    lenient = ClientPolicy(corrupt_fraction=0.1)  # c = 1: majority 6
    SecAggClient(cfg, 1, identity=identities[1], trust=trust, policy=lenient)
    strict = ClientPolicy(corrupt_fraction=0.2)  # c = 2: majority 7 (t = 9 still passes the threshold check)
    with pytest.raises(PolicyViolation, match="quorum 6"):
        SecAggClient(cfg, 1, identity=identities[1], trust=trust, policy=strict)


def test_full_graph_round_with_a_quorum_below_t_forwards_and_checks_the_quorum():
    """n = 10, t = 9, quorum 6: each party gets exactly 6 signatures (not t) and the sum is exact;
    a request with 5 is refused before any signature is verified."""
    cfg = dataclasses.replace(malicious_config(10, threshold=9), quorum=6)
    r = Round(cfg=cfg)
    requests = r.to_unmasking()
    assert {len(request.signatures) for request in requests.values()} == {6}
    short = dataclasses.replace(requests[1], signatures=requests[1].signatures[:5])
    with pytest.raises(RemoteProtocolError, match="the quorum is 6"):
        r.clients[1].receive(short)
    identities, trust = identities_for(cfg)
    inputs = random_inputs(cfg, 3)
    report = run_secagg_round(cfg, inputs, DropoutSchedule({3: SecAggStep.UNMASK}), identities=identities, trust=trust,
                              policy=ClientPolicy(corrupt_fraction=0.1))
    assert report.aborted is None and not report.client_errors
    assert [int(v) for v in report.result] == plain_sum(inputs, set(cfg.party_ids), cfg.modulus)


@pytest.mark.parametrize("n", [5, 10, 40, 100, 1000])
def test_malicious_threshold_is_the_semi_malicious_bound(n):
    """Spec §14.2: 2t > k + c (h + 2c with h + c = k, or n in the full graph), the same formula."""
    mal = find_graph_parameters(n, 0.05, 0.1, Adversary.MALICIOUS)
    semi = find_graph_parameters(n, 0.05, 0.1, Adversary.SEMI_MALICIOUS)
    assert (mal.neighbours, mal.threshold) == (semi.neighbours, semi.threshold)
    curious = find_graph_parameters(n, 0.05, 0.1, Adversary.CURIOUS)
    assert mal.threshold > (mal.neighbours + (1 if mal.full_graph else 0)) / 2 >= curious.threshold or n < 10


@pytest.mark.parametrize("n,neighbours,drops,unsigned", [
    (7, None, {}, set()),
    (7, None, {3: SecAggStep.UNMASK}, set()),
    # (dropouts chosen so that every party keeps t holders on this config's relabelled ring)
    (16, 8, {2: SecAggStep.SHARE, 1: SecAggStep.INPUT, 3: SecAggStep.UNMASK, 4: SecAggStep.UNMASK}, {4}),
    # n > 2k: the server forwards only the signers nearest each party on the ring (server.py)
    (40, 8, {2: SecAggStep.SHARE, 5: SecAggStep.INPUT, 9: SecAggStep.UNMASK}, {9}),
])
def test_malicious_round_sums_exactly_the_survivors(n, neighbours, drops, unsigned):
    cfg = malicious_config(n, threshold=5 if n < 40 else 6, neighbours=neighbours)
    identities, trust = identities_for(cfg)
    inputs = random_inputs(cfg, 3)
    report = run_secagg_round(cfg, inputs, DropoutSchedule(drops, unsigned=frozenset(unsigned)), identities=identities, trust=trust)
    assert report.aborted is None and not report.client_errors
    survivors = {p for p in cfg.party_ids if drops.get(p, SecAggStep.UNMASK) is SecAggStep.UNMASK}
    assert report.input_ids == survivors
    assert report.signed_ids == survivors - set(unsigned)
    assert report.unmask_ids == survivors - {p for p, s in drops.items() if s is SecAggStep.UNMASK}
    assert [int(v) for v in report.result] == plain_sum(inputs, survivors, cfg.modulus)


def test_too_few_signers_abort_the_round_with_no_output():
    cfg = malicious_config(7, threshold=5)
    identities, trust = identities_for(cfg)
    report = run_secagg_round(
        cfg, random_inputs(cfg), DropoutSchedule({p: SecAggStep.UNMASK for p in (5, 6, 7)}, unsigned=frozenset({5, 6, 7})),
        identities=identities, trust=trust,
    )
    assert report.result is None and report.aborted.stage == "consistency-check"


def test_clients_need_identities_and_refuse_a_downgrade():
    cfg = malicious_config()
    identities, trust = identities_for(cfg)
    with pytest.raises(InvalidParameters):
        SecAggClient(cfg, 1)
    with pytest.raises(InvalidParameters):
        SecAggClient(cfg, 1, identity=identities[2], trust=trust)
    with pytest.raises(InvalidParameters):
        SecAggClient(cfg, 1, identity=identities[1], trust=TrustStore({p: k for p, k in trust.items() if p != 1}))
    plain = dataclasses.replace(cfg, malicious=False)
    with pytest.raises(PolicyViolation, match="requires malicious mode"):
        SecAggClient(plain, 1, identity=identities[1], trust=trust)
    with pytest.raises(PolicyViolation, match="not in malicious mode"):  # a policy asking for it, no identity
        SecAggClient(plain, 1, policy=ClientPolicy(adversary=Adversary.MALICIOUS))
    with pytest.raises(InvalidParameters):
        SecAggServer(plain, trust=trust)


def test_trust_store_validates_its_keys():
    key = Signer(bytes(range(32))).verify_key
    with pytest.raises(InvalidParameters):
        TrustStore({0: key})
    with pytest.raises(InvalidParameters):
        TrustStore({1: key[:31]})
    with pytest.raises(InvalidParameters):
        TrustStore({1: key, 2: key})
    store = TrustStore({1: key})
    assert dict(store) == {1: key} and not store.verify(2, bytes(64), b"x")
    signature = Signer(bytes(range(32))).sign(b"statement")
    assert store.verify(1, signature, b"statement") and not store.verify(1, signature, b"statement!")
    assert Verifier(key).verify(signature, b"statement") and not Verifier(key).verify(signature[:63], b"statement")


def test_new_messages_round_trip_and_reject_truncation():
    signature = bytes(range(64))
    messages = [
        AdvertiseKeys(3, b"c" * 32, b"m" * 32, signature),
        KeyBroadcast(1, (PeerKeys(2, b"c" * 32, b"m" * 32, signature), PeerKeys(5, b"d" * 32, b"n" * 32, signature)), True),
        ConsistencyRequest(4, (1, 2, 4)),
        ConsistencyResponse(4, signature),
        UnmaskRequest(4, (1, 2), (3,), ((1, signature), (2, signature))),
        UnmaskRequest(4, (1, 2), (3,), ()),
    ]
    for message in messages:
        data = message.to_bytes()
        assert decode_message(data) == message
        with pytest.raises(DecodeError):
            decode_message(data[:-1])
        with pytest.raises(DecodeError):
            decode_message(data + b"\0")
    # unsigned messages keep their old type and bytes
    assert AdvertiseKeys(3, b"c" * 32, b"m" * 32).to_bytes()[6] == MessageType.ADVERTISE_KEYS
    assert UnmaskRequest(4, (1,), ()).to_bytes()[6] == MessageType.UNMASK_REQUEST
    unsorted = bytearray(messages[4].to_bytes())
    assert decode_message(bytes(unsorted)).signatures[0][0] == 1


# -- a round driven step by step -------------------------------------------------------------------------


class Round:
    """Production clients and server of one malicious-mode round, driven by hand."""

    def __init__(self, n=7, threshold=5, neighbours=None, name="malicious-tests", cfg=None):
        self.cfg = malicious_config(n, threshold, neighbours) if cfg is None else cfg
        self.identities, self.trust = identities_for(self.cfg, name)
        self.server = SecAggServer(self.cfg, trust=self.trust)
        self.clients = {
            p: SecAggClient(
                self.cfg, p, random_bytes=DeterministicRandomness(f"{name}/party-{p}"),
                identity=self.identities[p], trust=self.trust,
            )
            for p in self.cfg.party_ids
        }
        self.inputs = random_inputs(self.cfg, 11)
        self.adverts = {}

    def advertise(self):
        for p, client in self.clients.items():
            (message,) = client.start()
            self.adverts[p] = message
            self.server.receive(message)
        return self.server.close_stage()

    def to_consistency(self):
        for out in self.advertise():
            for message in self.clients[out.recipient].receive(out.message):
                self.server.receive(message)
        for out in self.server.close_stage():
            self.clients[out.recipient].receive(out.message)
            for message in self.clients[out.recipient].submit_input(self.inputs[out.recipient]):
                self.server.receive(message)
        return self.server.close_stage()

    def to_unmasking(self):
        for out in self.to_consistency():
            for message in self.clients[out.recipient].receive(out.message):
                self.server.receive(message)
        return {out.recipient: out.message for out in self.server.close_stage()}


def test_consistency_stage_in_the_tables_and_views():
    r = Round()
    requests = r.to_consistency()
    assert r.server.stage is ServerStage.COLLECTING_SIGNATURES
    assert all(isinstance(o.message, ConsistencyRequest) for o in requests)
    assert r.server.expected_ids == r.server.input_ids
    with pytest.raises(RemoteProtocolError):  # an unmasking request before the consistency check
        r.clients[1].receive(UnmaskRequest(1, tuple(p for p in r.cfg.party_ids if p != 1), ()))
    assert r.clients[1].stage is ClientStage.ABORTED


def test_server_ignores_bad_signatures_and_broadcasts_signed_keys():
    r = Round()
    for p, client in r.clients.items():
        (message,) = client.start()
        if p == 3:
            message = dataclasses.replace(message, signature=bytes(64))
        r.server.receive(message)
    assert [(m.party_id, m.reason) for m in r.server.ignored] == [(3, IgnoredReason.INVALID)]
    r.server.receive(AdvertiseKeys(4, *public_keys(40), b""))  # unsigned in a malicious round (duplicate anyway)
    broadcasts = r.server.close_stage()
    assert all(o.message.signed and 3 not in {p.party_id for p in o.message.peers} for o in broadcasts)


def public_keys(seed):
    return public_key(bytes([seed]) * 32), public_key(bytes([seed + 1]) * 32)


@pytest.mark.parametrize("attack", ["forged", "unknown-identity", "replayed-other-round", "unsigned"])
def test_client_refuses_a_key_broadcast_with_bad_identities(attack):
    r = Round()
    broadcasts = {o.recipient: o.message for o in r.advertise()}
    message = broadcasts[1]
    peers = list(message.peers)
    if attack == "forged":
        peers[0] = dataclasses.replace(peers[0], signature=bytes(64))
    elif attack == "unknown-identity":
        r.clients[1]._trust = TrustStore({p: k for p, k in r.trust.items() if p != peers[0].party_id})  # noqa: SLF001
    elif attack == "replayed-other-round":
        # party 2's genuine signature over the same keys, but for round 1 of the same session
        other = dataclasses.replace(r.cfg, round_index=1)
        stale = r.identities[2].sign(advertisement_statement(other, 2, peers[0].channel_public_key, peers[0].mask_public_key))
        peers[0] = dataclasses.replace(peers[0], signature=stale)
    else:
        peers = [dataclasses.replace(p, signature=b"") for p in peers]
    tampered = KeyBroadcast(1, tuple(peers), attack != "unsigned")
    with pytest.raises(RemoteProtocolError):
        r.clients[1].receive(decode_message(tampered.to_bytes()))
    assert r.clients[1].stage is ClientStage.ABORTED


def _split_of(client, survivors):
    peers = client.mask_peers
    return tuple(sorted(peers & set(survivors))), tuple(sorted(peers - set(survivors)))


@pytest.mark.parametrize("attack", ["forged", "split-set", "too-few", "unknown-identity", "outside-survivors", "not-the-signed-split", "missing"])
def test_client_refuses_an_unmasking_request_without_consistent_signatures(attack):
    r = Round()
    requests = r.to_unmasking()
    request = requests[1]
    assert len(request.signatures) == r.cfg.quorum == r.cfg.threshold  # the full graph: any quorum (t by default)
    signatures = list(request.signatures)
    alive, dropped = request.alive_ids, request.dropped_ids
    if attack == "forged":
        signatures[3] = (signatures[3][0], bytes(64))
    elif attack == "split-set":  # party 4's genuine signature, over a set without party 7
        signer = signatures[3][0]
        other = r.identities[signer].sign(consistency_statement(r.cfg, (1, 2, 3, 4, 5, 6)))
        signatures[3] = (signer, other)
    elif attack == "too-few":
        signatures = signatures[: r.cfg.threshold - 1]
    elif attack == "unknown-identity":
        unknown = signatures[-1][0]
        r.clients[1]._trust = TrustStore({p: k for p, k in r.trust.items() if p != unknown})  # noqa: SLF001
    elif attack == "outside-survivors":
        r.clients[1]._signed_set = (1, 2, 3, 4, 5, 6)  # noqa: SLF001 -- as if 7 were not in U3
        alive, dropped = _split_of(r.clients[1], (1, 2, 3, 4, 5, 6))
    elif attack == "not-the-signed-split":
        alive, dropped = alive[:-1], dropped + alive[-1:]
    else:
        signatures = None
    tampered = UnmaskRequest(1, alive, dropped, None if signatures is None else tuple(signatures))
    with pytest.raises(RemoteProtocolError):
        r.clients[1].receive(decode_message(tampered.to_bytes()))
    assert r.clients[1].stage is ClientStage.ABORTED
    # the untouched request is answered by another client
    assert isinstance(r.clients[2].receive(requests[2])[0], UnmaskResponse)


def test_sparse_graph_needs_t_signers_among_each_peers_holders():
    r = Round(n=16, threshold=5, neighbours=8)
    requests = r.to_unmasking()
    party = 1
    request = requests[party]
    holders_of = {peer: r.server.neighbours[peer] for peer in r.clients[party].mask_peers}
    # keep the signatures of every signer but drop one peer's holders down to t - 1
    peer = min(holders_of)
    keep = sorted(holders_of[peer])[: r.cfg.threshold - 1]
    signatures = tuple((s, sig) for s, sig in request.signatures if s not in holders_of[peer] or s in keep)
    assert len(signatures) >= r.cfg.threshold
    with pytest.raises(RemoteProtocolError, match="share holders signed"):
        r.clients[party].receive(dataclasses.replace(request, signatures=signatures))
    assert isinstance(r.clients[2].receive(requests[2])[0], UnmaskResponse)


def test_second_consistency_request_with_a_different_set_is_refused_and_a_repeat_is_answered():
    r = Round()
    requests = {o.recipient: o.message for o in r.to_consistency()}
    first = r.clients[1].receive(requests[1])
    assert r.clients[1].receive(requests[1]) == first  # identical repeat, identical (deterministic) signature
    with pytest.raises(RemoteProtocolError, match="different survivor set"):
        r.clients[1].receive(ConsistencyRequest(1, (1, 2, 3, 4, 5, 6)))


@pytest.mark.parametrize("malicious", [False, True])
def test_unmasking_with_exactly_t_minus_one_alive_holders_is_refused(malicious):
    """The boundary: t - 1 alive holders (the client's own share counts in the full graph) is refused,
    t is answered."""
    n, t = 7, 5
    cfg = SecAggConfig(tuple(range(1, n + 1)), 4, 1, n - 1, t, SESSION, malicious=malicious)
    identities, trust = identities_for(cfg)

    def client_at_input_sent():
        server = SecAggServer(cfg, trust=trust if malicious else None)
        clients = {
            p: SecAggClient(cfg, p, random_bytes=DeterministicRandomness(f"boundary/{p}"),
                            identity=identities[p] if malicious else None, trust=trust if malicious else None)
            for p in cfg.party_ids
        }
        for c in clients.values():
            for m in c.start():
                server.receive(m)
        for out in server.close_stage():
            for m in clients[out.recipient].receive(out.message):
                server.receive(m)
        for out in server.close_stage():
            clients[out.recipient].receive(out.message)
            clients[out.recipient].submit_input(np.zeros(4, dtype=np.uint32))
        return clients

    for alive_count, refused in ((t - 1, True), (t, False)):
        clients = client_at_input_sent()
        survivors = tuple(range(1, alive_count + 1))  # party 1 and t - 2 (or t - 1) alive peers
        peers = set(cfg.party_ids) - {1}
        alive, dropped = tuple(sorted(peers & set(survivors))), tuple(sorted(peers - set(survivors)))
        assert len(alive) + 1 == alive_count
        def ask():
            if malicious:  # party 1 is asked first; the boundary is checked when it signs
                signatures = [(p, clients[p].receive(ConsistencyRequest(p, survivors))[0].signature) for p in survivors]
                return clients[1].receive(UnmaskRequest(1, alive, dropped, tuple(signatures)))
            return clients[1].receive(UnmaskRequest(1, alive, dropped))
        if refused:
            with pytest.raises(RemoteProtocolError, match="threshold"):
                ask()
            assert clients[1].stage is ClientStage.ABORTED
        else:
            (response,) = ask()
            assert len(response.seed_shares) == t and len(response.key_shares) == n - t


# -- canonical X25519 keys ------------------------------------------------------------------------------


def test_canonical_public_key_ignores_the_top_bit_and_reduces_mod_p():
    key = public_key(bytes(range(1, 33)))
    flipped = key[:31] + bytes([key[31] ^ 0x80])
    assert flipped != key and canonical_public_key(flipped) == canonical_public_key(key) == key
    p = (1 << 255) - 19
    assert canonical_public_key((p + 5).to_bytes(32, "little")) == (5).to_bytes(32, "little")
    with pytest.raises(InvalidParameters):
        canonical_public_key(key[:31])


@pytest.mark.parametrize("malicious", [False, True])
def test_a_key_with_the_top_bit_flipped_counts_as_the_same_key(malicious):
    """The server refuses it as reused; a client that is sent it (by a lying server) aborts."""
    cfg = SecAggConfig(tuple(range(1, 6)), 4, 1, 4, 4, SESSION, malicious=malicious)
    identities, trust = identities_for(cfg)
    kwargs = lambda p: dict(identity=identities[p], trust=trust) if malicious else {}  # noqa: E731
    server = SecAggServer(cfg, trust=trust if malicious else None)
    clients = {p: SecAggClient(cfg, p, random_bytes=DeterministicRandomness(f"flip/{p}"), **kwargs(p)) for p in cfg.party_ids}
    adverts = {p: c.start()[0] for p, c in clients.items()}
    for message in adverts.values():
        server.receive(message)
    flip = lambda k: k[:31] + bytes([k[31] ^ 0x80])  # noqa: E731
    copy_of_2 = flip(adverts[2].mask_public_key)
    signature = identities[5].sign(advertisement_statement(cfg, 5, adverts[5].channel_public_key, copy_of_2)) if malicious else b""
    replay = AdvertiseKeys(5, adverts[5].channel_public_key, copy_of_2, signature)
    fresh = SecAggServer(cfg, trust=trust if malicious else None)
    for p in (1, 2, 3, 4):
        fresh.receive(adverts[p])
    fresh.receive(replay)
    assert [(m.party_id, m.reason, m.detail) for m in fresh.ignored] == [(5, IgnoredReason.INVALID, "public key reused")]
    # A lying server sends party 1 a broadcast in which party 5 "has" party 2's mask key (top bit flipped).
    broadcast = {o.recipient: o.message for o in server.close_stage()}[1]
    peers = [dataclasses.replace(p, mask_public_key=copy_of_2, signature=signature) if p.party_id == 5 else p for p in broadcast.peers]
    with pytest.raises(RemoteProtocolError, match="pairwise distinct"):
        clients[1].receive(KeyBroadcast(1, tuple(peers), malicious))


# -- snapshots --------------------------------------------------------------------------------------------


def test_malicious_client_snapshots_keep_the_signed_set_and_need_the_identity():
    r = Round()
    requests = {o.recipient: o.message for o in r.to_consistency()}
    client = r.clients[1]
    before = client.snapshot()
    client.receive(requests[1])
    after = client.snapshot()
    with pytest.raises(LocalProtocolError):
        SecAggClient.restore(after)
    restored = SecAggClient.restore(after, identity=r.identities[1], trust=r.trust)
    assert restored.stage is ClientStage.SIGNED and restored.snapshot() == after
    assert SecAggClient.restore(before, identity=r.identities[1], trust=r.trust).stage is ClientStage.INPUT_SENT
    with pytest.raises(InvalidParameters):
        SecAggClient.restore(after, identity=r.identities[1], trust=TrustStore({2: r.trust[2]}))


def test_a_restored_snapshot_cannot_answer_a_second_split():
    """Detected case (spec §14.6): the snapshot was taken after signing U3, the client answered, the
    host restores the snapshot and the server asks for a different split -- refused, whatever
    signatures it forwards; the same split gets the same answer."""
    r = Round()
    for out in r.to_consistency():
        for message in r.clients[out.recipient].receive(out.message):
            r.server.receive(message)
    snapshot = r.clients[1].snapshot()
    requests = {o.recipient: o.message for o in r.server.close_stage()}
    (answer,) = r.clients[1].receive(requests[1])
    assert answer.key_shares == ()  # nobody dropped: seeds only
    # The server now claims party 7 dropped and forwards genuine signatures over that story from
    # everyone else (as if the other clients had been rolled back too).
    story = (1, 2, 3, 4, 5, 6)
    forged_view = tuple((p, r.identities[p].sign(consistency_statement(r.cfg, story))) for p in story)
    alive, dropped = _split_of(SecAggClient.restore(snapshot, identity=r.identities[1], trust=r.trust), story)
    restored = SecAggClient.restore(snapshot, identity=r.identities[1], trust=r.trust)
    with pytest.raises(RemoteProtocolError, match="not the split of the survivor set this client signed"):
        restored.receive(UnmaskRequest(1, alive, dropped, forged_view))
    restored = SecAggClient.restore(snapshot, identity=r.identities[1], trust=r.trust)
    with pytest.raises(RemoteProtocolError, match="different survivor set"):
        restored.receive(ConsistencyRequest(1, story))
    restored = SecAggClient.restore(snapshot, identity=r.identities[1], trust=r.trust)
    assert restored.receive(requests[1]) == [answer]


def test_snapshot_restore_at_every_stage_completes_a_malicious_round():
    r = Round()
    def cycle(p):
        r.clients[p] = SecAggClient.restore(r.clients[p].snapshot(), identity=r.identities[p], trust=r.trust,
                                            random_bytes=r.clients[p]._random_bytes)  # noqa: SLF001
    for out in r.advertise():
        cycle(out.recipient)
        for message in r.clients[out.recipient].receive(out.message):
            r.server.receive(message)
    for out in r.server.close_stage():
        cycle(out.recipient)
        r.clients[out.recipient].receive(out.message)
        for message in r.clients[out.recipient].submit_input(r.inputs[out.recipient]):
            r.server.receive(message)
    for stage in range(2):
        for out in r.server.close_stage():
            cycle(out.recipient)
            for message in r.clients[out.recipient].receive(out.message):
                r.server.receive(message)
    r.server.close_stage()
    assert [int(v) for v in r.server.result] == plain_sum(r.inputs, set(r.cfg.party_ids), r.cfg.modulus)


def test_sparse_server_forwards_fewer_signatures_than_it_has():
    r = Round(n=40, threshold=6, neighbours=8)
    requests = r.to_unmasking()
    counts = [len(request.signatures) for request in requests.values()]
    assert max(counts) < 17 and min(counts) >= r.cfg.threshold  # the 2-hop window would be 17
    for party, request in requests.items():
        (response,) = r.clients[party].receive(request)
        r.server.receive(response)
    r.server.close_stage()
    assert [int(v) for v in r.server.result] == plain_sum(r.inputs, set(r.cfg.party_ids), r.cfg.modulus)


# -- identity files (CLI, Flower node config) ---------------------------------------------------------


def test_identity_and_trust_store_files_round_trip_and_refuse_bad_input(tmp_path):
    import json
    import os

    from fedprivacy.adapters.identity import (
        IDENTITY_KEY,
        TRUST_STORE_KEY,
        identity_from_config,
        load_identity,
        load_trust_store,
        save_identity,
        save_trust_store,
    )

    identities, trust = make_identities([3, 7], DeterministicRandomness("files/identities"))
    save_trust_store(tmp_path / "trust.json", trust)
    save_identity(tmp_path / "id3.json", identities[3])
    assert os.stat(tmp_path / "id3.json").st_mode & 0o777 == 0o600
    assert dict(load_trust_store(tmp_path / "trust.json")) == dict(trust)
    assert load_identity(tmp_path / "id3.json").verify_key == identities[3].verify_key
    config = {IDENTITY_KEY: str(tmp_path / "id3.json"), TRUST_STORE_KEY: str(tmp_path / "trust.json")}
    identity, store = identity_from_config(config)
    assert identity.party_id == 3 and dict(store) == dict(trust)
    assert identity_from_config({}) == (None, None)
    with pytest.raises(InvalidParameters, match="both"):
        identity_from_config({IDENTITY_KEY: config[IDENTITY_KEY]})
    save_trust_store(tmp_path / "other.json", TrustStore({7: trust[7]}))
    with pytest.raises(InvalidParameters, match="does not name"):
        identity_from_config({**config, TRUST_STORE_KEY: str(tmp_path / "other.json")})
    for bad in ("not json", json.dumps({"version": 2, "keys": {}}), json.dumps({"version": 1, "keys": {"x": "00"}}),
                json.dumps({"version": 1, "keys": {"3": "zz" * 32}}), json.dumps({"version": 1, "keys": {}, "extra": 1})):
        (tmp_path / "bad.json").write_text(bad)
        with pytest.raises(InvalidParameters):
            load_trust_store(tmp_path / "bad.json")
    with pytest.raises(InvalidParameters):
        load_identity(tmp_path / "missing.json")


def test_a_snapshot_holds_no_identity_key_and_restores_only_with_its_own():
    ids = list(range(1, 6))
    config = SecAggConfig(tuple(ids), 4, 1, 4, 4, SESSION, malicious=True)
    identities, trust = make_identities(ids, DeterministicRandomness("snapshot-identity"))
    client = SecAggClient(config, 1, identity=identities[1], trust=trust)
    client.start()
    data = client.snapshot()
    assert identities[1].signing_key not in data  # the long-lived key is not copied into round state
    with pytest.raises(LocalProtocolError):
        SecAggClient.restore(data, identity=identities[2], trust=trust)  # another party's identity
    with pytest.raises(InvalidParameters):
        SecAggClient.restore(data, identity=identities[1])
    copy = SecAggClient.restore(data, identity=identities[1], trust=trust)
    assert copy._identity is identities[1] and copy._trust is trust and copy.snapshot() == data


def test_the_fixed_size_fast_decoder_accepts_exactly_what_the_general_reader_accepts(monkeypatch):
    import random

    from fedprivacy.secagg import messages as wire
    from fedprivacy.secagg.messages import decode_message

    samples = [ConsistencyResponse(9, bytes(range(64))).to_bytes(),
               AdvertiseKeys(3, bytes(range(32)), bytes(range(32, 64)), bytes(range(64, 128))).to_bytes()]
    rng = random.Random(5)
    variants = []
    for data in samples:
        variants += [data, data[:-1], data + b"\0", bytearray(data), memoryview(data)]
        for _ in range(200):  # single-byte changes anywhere, header included
            changed = bytearray(data)
            changed[rng.randrange(len(data))] = rng.randrange(256)
            variants.append(bytes(changed))

    def outcome(data):
        try:
            return decode_message(data)
        except DecodeError:
            return "refused"

    fast = [outcome(v) for v in variants]
    monkeypatch.setattr(wire, "_FIXED_LAYOUTS", {})
    assert fast == [outcome(v) for v in variants]
    assert fast[0] == ConsistencyResponse(9, bytes(range(64)))


# -- one advertisement signature for two sums (spec §14.8) ------------------------------------------


class JointRound:
    """Two malicious sums over parties 1..16 advertised jointly: a SecAgg+ one (covered) and a full
    graph (verifying), as a submodel round's first PSU attempt and its rows' sum."""

    def __init__(self, n=16):
        ids = tuple(range(1, n + 1))
        self.covered_cfg = SecAggConfig(ids, 3, 3, 8, 5, SESSION, malicious=True)
        self.verifying_cfg = SecAggConfig(ids, 2, 1, n - 1, 12, b"joint advertisement: rows' sum!!", malicious=True)
        self.identities, self.trust = identities_for(self.covered_cfg, "joint")
        policy = weakened_policy()

        def clients(cfg, tag):
            return {p: SecAggClient(cfg, p, random_bytes=DeterministicRandomness(f"joint/{tag}/{p}"), identity=self.identities[p],
                                    trust=self.trust, policy=policy) for p in ids}

        self.covered, self.verifying = clients(self.covered_cfg, "covered"), clients(self.verifying_cfg, "verifying")
        self.covered_server = SecAggServer(self.covered_cfg, trust=self.trust, joint="covered")
        self.verifying_server = SecAggServer(self.verifying_cfg, trust=self.trust, joint="verifying")
        for p in ids:
            (first,), (second,) = start_jointly(self.covered[p], self.verifying[p])
            assert first.signature == second.signature  # one signature, carried by both advertisements
            self.covered_server.receive(decode_message(first.to_bytes()))
            self.verifying_server.receive(decode_message(second.to_bytes()))
        assert not self.covered_server.ignored and not self.verifying_server.ignored  # not checked there
        ads = self.covered_server.advertisements
        self.verifying_server.set_partner_keys({p: ads[p][:2] for p in ads})
        self.verifying_out = {o.recipient: o.message for o in self.verifying_server.close_stage()}
        self.covered_out = {o.recipient: o.message for o in self.covered_server.close_stage()}


def test_joint_advertisement_runs_both_sums_with_one_signature_per_peer():
    r = JointRound()
    inputs = random_inputs(r.covered_cfg, 5)
    shares = []
    for p, client in r.verifying.items():
        broadcast = r.verifying_out[p]
        assert broadcast.to_bytes()[6] == MessageType.JOINT_KEY_BROADCAST and len(broadcast.peers) == 15
        assert decode_message(broadcast.to_bytes()) == broadcast
        client.receive(decode_message(broadcast.to_bytes()))
        covered_broadcast = r.covered_out[p]
        assert covered_broadcast.to_bytes()[6] == MessageType.KEY_BROADCAST and len(covered_broadcast.peers) == 8
        r.covered[p].accept_partner_keys(client.partner_keys)
        shares += r.covered[p].receive(decode_message(covered_broadcast.to_bytes()))
    for message in shares:
        r.covered_server.receive(message)
    for out in r.covered_server.close_stage():
        r.covered[out.recipient].receive(out.message)
        r.covered_server.receive(r.covered[out.recipient].submit_input(inputs[out.recipient])[0])
    for out in r.covered_server.close_stage():
        r.covered_server.receive(r.covered[out.recipient].receive(out.message)[0])
    for out in r.covered_server.close_stage():
        r.covered_server.receive(r.covered[out.recipient].receive(out.message)[0])
    r.covered_server.close_stage()
    assert [int(v) for v in r.covered_server.result] == plain_sum(inputs, set(r.covered_cfg.party_ids), r.covered_cfg.modulus)


@pytest.mark.parametrize("attack", ["covered-first", "substituted", "covered-signed", "forged", "partner-changed",
                                    "singly-signed"])
def test_joint_advertisement_refusals(attack):
    r = JointRound()
    verifying, covered = r.verifying[1], r.covered[1]
    broadcast, covered_broadcast = r.verifying_out[1], r.covered_out[1]
    if attack == "covered-first":  # the PSU broadcast before the rows' one authenticated its keys
        with pytest.raises(RemoteProtocolError, match="before the partner sum authenticated"):
            covered.receive(covered_broadcast)
        return
    if attack in ("forged", "partner-changed", "singly-signed"):
        peers = list(broadcast.peers)
        if attack == "forged":
            peers[2] = dataclasses.replace(peers[2], signature=peers[2].signature[:-1] + bytes([peers[2].signature[-1] ^ 1]))
            match = "joint key advertisement signature does not verify"
        elif attack == "partner-changed":  # another party's PSU keys under this one's joint signature
            peers[2] = dataclasses.replace(peers[2], partner_mask_public_key=peers[3].partner_mask_public_key)
            match = "joint key advertisement signature does not verify"
        else:  # the same entries as a singly signed broadcast (type 12)
            peers = [dataclasses.replace(p, partner_channel_public_key=b"", partner_mask_public_key=b"") for p in peers]
            match = "must be jointly signed"
        joint = attack != "singly-signed"
        with pytest.raises(RemoteProtocolError, match=match):
            verifying.receive(decode_message(KeyBroadcast(1, tuple(peers), True, joint).to_bytes()))
        return
    verifying.receive(broadcast)
    covered.accept_partner_keys(verifying.partner_keys)
    peers = list(covered_broadcast.peers)
    if attack == "substituted":
        peers[0] = dataclasses.replace(peers[0], mask_public_key=public_key(bytes(range(1, 33))))
        tampered, match = KeyBroadcast(1, tuple(peers)), "not the ones its joint advertisement signed"
    else:  # signed with the joint signatures: not the covered form
        signatures = {p.party_id: p.signature for p in broadcast.peers}
        tampered = KeyBroadcast(1, tuple(dataclasses.replace(p, signature=signatures[p.party_id]) for p in peers), True)
        match = "is unsigned"
    with pytest.raises(RemoteProtocolError, match=match):
        covered.receive(decode_message(tampered.to_bytes()))
    assert covered.stage is ClientStage.ABORTED


def test_a_joint_signature_is_no_single_advertisement_and_start_jointly_checks_its_pair():
    r = JointRound()
    # domain separation: a server checking single advertisements ignores a jointly signed one
    alone = SecAggServer(r.covered_cfg, trust=r.trust)
    fresh = SecAggClient(r.covered_cfg, 1, identity=r.identities[1], trust=r.trust, policy=weakened_policy())
    partner = SecAggClient(r.verifying_cfg, 1, identity=r.identities[1], trust=r.trust, policy=weakened_policy())
    (advert,), _ = start_jointly(fresh, partner)
    alone.receive(advert)
    assert [(m.party_id, m.reason) for m in alone.ignored] == [(1, IgnoredReason.INVALID)]
    stored = fresh.snapshot()  # a jointly advertised sum is snapshotted as type 19 (spec §14.6)
    assert stored[6] == 19 and fresh.snapshot() == stored
    copy = SecAggClient.restore(stored, identity=r.identities[1], trust=r.trust, policy=weakened_policy())
    assert copy.snapshot() == stored and copy._joint == "covered" and copy._joint_partner == r.verifying_cfg
    with pytest.raises(LocalProtocolError):
        partner.accept_partner_keys({})  # the verifying sum hands keys on; it takes none
    fresh.accept_partner_keys({})
    with pytest.raises(LocalProtocolError):
        fresh.accept_partner_keys({})  # once
    ids = r.covered_cfg.party_ids

    def pair(covered_cfg, verifying_cfg, party=2, other=2):
        return (SecAggClient(covered_cfg, party, identity=r.identities[party], trust=r.trust, policy=weakened_policy()),
                SecAggClient(verifying_cfg, other, identity=r.identities[other], trust=r.trust, policy=weakened_policy()))

    sparse_verifier = SecAggConfig(ids, 2, 1, 8, 5, b"joint advertisement: not full!!!", malicious=True)
    for first, second in (pair(r.covered_cfg, sparse_verifier), pair(r.covered_cfg, r.verifying_cfg, 2, 3),
                          pair(r.covered_cfg, r.covered_cfg)):
        with pytest.raises(LocalProtocolError):
            start_jointly(first, second)
        assert first.stage is ClientStage.CREATED and second.stage is ClientStage.CREATED  # nothing moved
