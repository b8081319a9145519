"""The server's fast paths equal the straightforward ones they replace, and its time is counted whole.

Batched Shamir reconstruction against per-secret reconstruction, batched pair-mask removal against
one mask at a time, the packed reference model against its dict, and the engine's server time
including the lazily built row downloads. Seeded inputs (public), no Hypothesis.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from fedprivacy.hazmat import shamir
from fedprivacy.hazmat.field import P61, Modulus
from fedprivacy.ldp import RRParameters
from fedprivacy.secagg import RowPlan
from fedprivacy.secagg.rows import _RowMasks
from fedprivacy.submodel.demo import DenseHead, init_model, synthetic_workload
from fedprivacy.submodel.reference import ReferenceModel, ReferenceTrainer
from fedprivacy.submodel.client import DeviceState
from fedprivacy.submodel.engine import run_round
from fedprivacy.submodel.settings import RoundSettings


def test_batched_reconstruction_equals_one_secret_at_a_time():
    rng = np.random.default_rng(11)
    for count, t in ((9, 1), (9, 2), (40, 7), (12, 60), (3, 300)):
        xs = np.stack([np.sort(rng.choice(np.arange(1, 4000), t, replace=False)) for _ in range(count)])
        xs[1] = xs[0]  # a repeated holder set is interpolated once
        shares = rng.integers(0, P61, size=(count, t, 5), dtype=np.uint64)
        batched = shamir.reconstruct_many(shares, xs)
        one_by_one = np.stack([shamir.reconstruct(shares[i], tuple(int(x) for x in xs[i])) for i in range(count)])
        assert np.array_equal(batched, one_by_one)
        weights = shamir.lagrange_at_zero_many(xs[:2])
        assert np.array_equal(weights[0], shamir.lagrange_at_zero(tuple(int(x) for x in xs[0])))


def test_batched_reconstruction_recovers_shared_secrets_and_refuses_repeated_points():
    secrets = np.array([5, P61 - 1, 0, 123456789], dtype=np.uint64)
    holders = list(range(1, 11))
    shares = shamir.share(secrets, holders, 4, os.urandom)  # (holders, secrets)
    picks = np.array([[1, 3, 5, 7], [2, 4, 6, 8], [7, 8, 9, 10], [1, 2, 3, 4]])
    stacked = np.stack([shares[picks[i] - 1, i][:, None] for i in range(4)])  # (secrets, t, 1)
    assert shamir.reconstruct_many(stacked, picks)[:, 0].tolist() == secrets.tolist()
    with pytest.raises(ValueError):
        shamir.reconstruct_many(stacked, np.array([[1, 1, 5, 7]] * 4))


@pytest.mark.parametrize("modulus", list(Modulus))
def test_batched_pair_masks_equal_one_mask_at_a_time(modulus):
    rng = np.random.default_rng(int(modulus))
    rows = np.sort(rng.choice(10**6, 700, replace=False)).astype(np.uint64)
    masks = []
    for index in range(300):  # mostly tiny masks (batched) and some large ones (one at a time)
        size = int(rng.integers(1, 6)) if index % 5 else int(rng.integers(16, 200))
        masks.append((os.urandom(16), np.sort(rng.choice(700, size, replace=False)).astype(np.int64), bool(index % 3)))
    for width in (1, 19):
        one, many = _RowMasks(rows, width, modulus), _RowMasks(rows, width, modulus)
        start = rng.integers(0, P61, size=one.acc.shape, dtype=np.uint64).astype(one.acc.dtype)
        one.acc[:], many.acc[:] = start, start
        for key, positions, subtract in masks:
            one.add(key, positions, subtract)
        many.add_many(masks)
        assert np.array_equal(one.acc[:, :width], many.acc[:, :width])


@pytest.mark.parametrize("modulus", list(Modulus))
def test_masks_over_every_row_of_a_small_accumulator_equal_one_mask_at_a_time(modulus):
    """A dropout that kept only the dense pseudo-rows shares all of them with every survivor: those
    masks are summed slot by slot (and mixed with masks over some of the rows)."""
    rng = np.random.default_rng(3)
    for count in (1, 2, 5):
        rows = np.sort(rng.choice(10**6, count, replace=False)).astype(np.uint64)
        masks = [(os.urandom(16), np.arange(count, dtype=np.int64) if index % 4 else
                  np.sort(rng.choice(count, max(1, count - 1), replace=False)).astype(np.int64), bool(index % 3))
                 for index in range(5000)]  # more keys than one batch holds
        one, many = _RowMasks(rows, 19, modulus), _RowMasks(rows, 19, modulus)
        for key, positions, subtract in masks:
            one.add(key, positions, subtract)
        many.add_many(masks)
        assert one.acc.any() and np.array_equal(one.acc[:, :19], many.acc[:, :19])


def test_pair_mask_removal_with_and_without_the_callers_sharing_list():
    rng = np.random.default_rng(5)
    union = np.sort(rng.choice(10**5, 400, replace=False)).astype(np.uint64)
    plan = RowPlan(union, 3, {p: union[rng.random(400) < 0.3] for p in range(1, 30)})
    keys = {p: os.urandom(16) for p in range(2, 30)}
    given, found = np.zeros(plan.dim, dtype=np.uint64), np.zeros(plan.dim, dtype=np.uint64)
    unmasker = plan.unmasker(Modulus.U64)
    unmasker.remove_pair_masks(1, keys, list(plan._shared_positions(1)))
    unmasker.apply_to(given)
    unmasker = plan.unmasker(Modulus.U64)
    unmasker.remove_pair_masks(1, keys)
    unmasker.apply_to(found)
    assert given.any() and np.array_equal(given, found)


def test_the_packed_reference_model_serves_and_updates_like_its_dict():
    head = DenseHead(np.ones(2), 0.0)
    for ids in ([0, 1, 2, 3, 4], [3, 10, 7, 1 << 40]):  # positions are ids, or found by search
        table = {i: np.full(3, float(i % 97)) for i in ids}
        server = ReferenceModel(table, head)
        wanted = np.array(sorted(ids)[1:3], dtype=np.uint64)
        assert np.array_equal(server.rows(wanted), np.stack([table[int(i)] for i in wanted]))
        old = table[int(wanted[0])]
        server.apply_row_updates(wanted, np.ones((2, 3)))
        assert np.array_equal(old, np.full(3, float(int(wanted[0]) % 97)))  # rebound, never written in place
        assert np.array_equal(table[int(wanted[0])], old + 1) and np.array_equal(server.rows(wanted[:1])[0], old + 1)
        with pytest.raises(KeyError):
            server.rows(np.array([5, 1 << 41], dtype=np.uint64))


def test_the_reference_model_keeps_one_copy_of_its_rows_and_never_writes_a_row_it_handed_out():
    head = DenseHead(np.ones(2), 0.0)
    table = {i: np.full(3, float(i)) for i in range(6)}
    server = ReferenceModel(table, head)
    # the dict's values are now views of the packed rows: one copy of the data, read-only
    assert all(table[i].base is not None and table[i].base is table[0].base and not table[i].flags.writeable for i in table)
    snapshot = dict(table)
    for step in (1, 2):  # the first update copies the packed rows off the views, the second writes that copy
        server.apply_row_updates(np.array([1, 4], dtype=np.uint64), np.ones((2, 3)))
        assert all(np.array_equal(snapshot[i], np.full(3, float(i))) for i in table)
        assert np.array_equal(server.rows(np.array([1, 4], dtype=np.uint64)), np.array([[1.0 + step] * 3, [4.0 + step] * 3]))
        assert np.array_equal(table[4], np.full(3, 4.0 + step)) and np.array_equal(table[3], np.full(3, 3.0))


class _ClockedModel(ReferenceModel):
    """Serving rows advances a fake clock by 100 s: only the server's time may take it in."""

    def __init__(self, table, head, now) -> None:
        super().__init__(table, head)
        self.now = now
        self.served = 0

    def rows(self, ids):
        self.now[0] += 100.0
        self.served += 1
        return super().rows(ids)


def test_server_time_counts_the_lazily_built_row_downloads():
    workload = synthetic_workload(clients=20, universe=3000, items_per_user=80, seed=3)
    states = {c.client_id: DeviceState.new(ReferenceTrainer(c), RRParameters.preset(2)) for c in workload.clients}
    now = [0.0]
    model = _ClockedModel(*init_model(np.arange(3000, dtype=np.uint64), 6, seed=1), now)
    outcome = run_round(states, model, RoundSettings(universe=3000, dropout_fraction=0.25), 0, clock=lambda: now[0])
    assert model.served >= 2
    assert outcome.server_seconds >= 100.0 * model.served
    assert outcome.client_seconds_median < 100.0


def test_the_pair_mask_tag_is_the_domain_tag():
    from fedprivacy.encoding import domain_tag
    from fedprivacy.secagg import masking

    for low, high in ((0, 1), (7, 9), (1, (1 << 32) - 1), ((1 << 64) - 2, (1 << 64) - 1)):
        prefix = masking._two(masking._PAIR_MASK, low, high)
        assert prefix == domain_tag("secagg", "pair-mask", low, high)


@pytest.mark.parametrize("signed,joint", [(False, False), (True, False), (True, True)])
def test_key_broadcasts_from_the_servers_table_are_the_entry_by_entry_bytes(signed, joint):
    from fedprivacy.secagg.messages import KeyBroadcast, PeerKeys, PeerKeyTable, decode_message

    rng = np.random.default_rng(7)
    ids = sorted(rng.choice(np.arange(1, 5000), 40, replace=False).tolist())
    extra = 32 if joint else 0
    entries = [PeerKeys(p, os.urandom(32), os.urandom(32), os.urandom(64) if signed else b"", os.urandom(extra),
                        os.urandom(extra)) for p in ids]
    table = PeerKeyTable(list(reversed(entries)))  # any order in: rows by party id
    picks = [table.all_but(0), table.all_but(17), table.all_but(39), table.select(np.array([], dtype=np.int64)),
             table.select(np.array([2, 3, 11, 39])), table.select(np.arange(40))]
    for peers in picks:
        chosen = tuple(peers)
        packed, plain = KeyBroadcast(9, peers, signed, joint), KeyBroadcast(9, chosen, signed, joint)
        assert peers == chosen and hash(peers) == hash(chosen) and len(peers) == len(chosen)
        assert packed.to_bytes() == plain.to_bytes()
        assert decode_message(packed.to_bytes()) == plain
    assert [p.party_id for p in table.all_but(17)] == ids[:17] + ids[18:]
    if not signed:  # a table of signed entries is never written as an unsigned broadcast
        return
    with pytest.raises(ValueError):
        KeyBroadcast(9, table.all_but(1), False, False).to_bytes()
    with pytest.raises(ValueError):
        table.select(np.array([3, 2]))


def test_the_servers_key_broadcasts_list_every_other_advertiser_on_the_full_graph_and_neighbours_on_a_sparse_one():
    from fedprivacy.hazmat.kex import generate_keypair
    from fedprivacy.secagg import SecAggServer
    from fedprivacy.secagg.messages import AdvertiseKeys, KeyBroadcast, decode_message

    from .helpers import config

    for full in (True, False):
        cfg = config(list(range(1, 31)), dim=4, neighbours=None if full else 8)
        assert cfg.full_graph is full
        server = SecAggServer(cfg)
        for party in range(1, 31):
            if party % 7:  # some never advertise
                server.receive(AdvertiseKeys(party, generate_keypair(os.urandom)[1], generate_keypair(os.urandom)[1]))
        out = server.close_stage()
        keys = server.advertised_ids
        for item in out:
            message = item.message
            assert isinstance(message, KeyBroadcast)
            expected = sorted(server.neighbours[item.recipient] & keys)
            assert [p.party_id for p in message.peers] == expected
            assert decode_message(message.to_bytes()) == KeyBroadcast(item.recipient, tuple(message.peers))


@pytest.mark.parametrize("full", [True, False])
def test_unmasking_requests_name_each_partys_mask_peers_split_by_who_uploaded(full):
    """The full graph's shortcut (U3 and U2 - U3 without the party) gives what the neighbourhood sets
    give; a request comes only to U3 and the round's sum is right."""
    from fedprivacy.secagg import SecAggStep
    from fedprivacy.secagg.driver import DropoutSchedule, run_secagg_round
    from fedprivacy.secagg.graph import all_neighbourhoods
    from fedprivacy.secagg.messages import UnmaskRequest, decode_message

    from .helpers import plain_sum, random_inputs

    from fedprivacy.secagg import SecAggConfig

    cfg = SecAggConfig.create(list(range(1, 31)), 5, Modulus.U32, full_graph=full, dropout_fraction=0.2)
    assert cfg.full_graph is full
    drops = {2: SecAggStep.ADVERTISE, 5: SecAggStep.SHARE, 7: SecAggStep.INPUT, 11: SecAggStep.INPUT, 12: SecAggStep.INPUT,
             13: SecAggStep.UNMASK}
    requests = {}

    def observe(sender, recipient, data):
        message = decode_message(data)
        if sender == 0 and isinstance(message, UnmaskRequest):
            requests[recipient] = message

    inputs = random_inputs(cfg, seed=3)
    report = run_secagg_round(cfg, inputs, DropoutSchedule(drops), observer=observe)
    assert report.aborted is None
    neighbourhoods = all_neighbourhoods(cfg)
    shared, alive = report.shared_ids, report.input_ids
    assert set(requests) == set(alive) and {7, 11} <= shared - alive
    for party, request in requests.items():
        peers = neighbourhoods[party] & shared
        assert request.alive_ids == tuple(sorted(peers & alive))
        assert request.dropped_ids == tuple(sorted(peers - alive))
    assert report.result.tolist() == plain_sum(inputs, sorted(alive), cfg.modulus)


def test_the_bench_floor_counts_the_key_agreements_the_server_makes(monkeypatch):
    """The floor's key agreements are exactly those the server runs when it unmasks (both sums)."""
    from fedprivacy_bench.round import run_round_bench
    from fedprivacy.secagg import unmasking as secagg_server  # where the server's unmasking agrees keys

    made = [0]

    class Counting(secagg_server.KeyAgreement):
        __slots__ = ()

        def agree(self, peer_public_raw):
            made[0] += 1
            return super().agree(peer_public_raw)

    monkeypatch.setattr(secagg_server, "KeyAgreement", Counting)
    result = run_round_bench(40, 30, 3000, 4, 0.2, RRParameters.preset(2), seed=4)
    floor = result["server_floor"]
    assert result["correct"] and made[0] > 0
    assert floor["key_agreements"] == made[0]
    assert set(floor["parts_seconds"]) >= {"keystream", "key_agreements", "key_derivations", "shamir"}


def test_the_plans_shared_rows_per_peer_equal_the_pairwise_intersections():
    rng = np.random.default_rng(9)
    union = np.sort(rng.choice(10**6, 300, replace=False)).astype(np.uint64)
    chosen = {p: union[rng.random(300) < (0.02 if p % 5 == 0 else 0.3)] for p in range(1, 41)}
    chosen[7] = union[:0]  # a party without rows
    plan = RowPlan(union, 4, chosen)
    for party, rows in chosen.items():
        expected = {peer: np.searchsorted(rows, np.intersect1d(rows, other)) for peer, other in chosen.items()
                    if peer != party and np.intersect1d(rows, other).size}
        found = list(plan._shared_positions(party))
        assert [peer for peer, _ in found] == sorted(expected)
        for peer, positions in found:
            assert positions.dtype == np.int64 and np.array_equal(positions, expected[peer])
        in_union = dict(plan._shared_positions(party, in_union=True))
        assert all(np.array_equal(union[in_union[peer]], rows[expected[peer]]) for peer in expected)
        shared = plan.for_client(party).shared
        assert set(shared) == set(expected) and all(np.array_equal(shared[p], rows[expected[p]]) for p in expected)


def test_routing_packed_share_lists_equals_regrouping_the_pairs_by_recipient():
    from fedprivacy.secagg.messages import CIPHERTEXT_BYTES, PackedCiphertexts, RoutedShares
    from fedprivacy.secagg.server import _route_packed

    rng = np.random.default_rng(12)
    senders = [2, 3, 5, 8, 9, 11, 14]
    everyone = senders + [4, 6]  # 4 and 6 advertised keys but shared none: their ciphertexts are not routed
    shared = frozenset(senders)
    lists = []
    for sender in senders:
        parties = np.array(sorted(p for p in everyone if p != sender and rng.random() < 0.8), dtype=np.int64)
        lists.append(PackedCiphertexts(parties, rng.integers(0, 256, (parties.shape[0], CIPHERTEXT_BYTES), dtype=np.uint8)))
    out = _route_packed(senders, lists, shared)
    expected = {p: [] for p in senders}
    for sender, listed in zip(senders, lists):
        for recipient, ciphertext in listed.pairs():
            if recipient in shared:
                expected[recipient].append((sender, ciphertext))
    assert [o.recipient for o in out] == senders
    for item in out:
        assert item.message == RoutedShares(item.recipient, tuple(expected[item.recipient]))
        assert item.message.to_bytes() == RoutedShares(item.recipient, tuple(expected[item.recipient])).to_bytes()


def test_a_plan_built_from_known_positions_equals_one_that_searches_them():
    rng = np.random.default_rng(21)
    union = np.sort(rng.choice(np.arange(10, 10**6), 200, replace=False)).astype(np.uint64)
    chosen = {p: union[rng.random(200) < 0.3] for p in range(1, 12)}
    right = {p: np.searchsorted(union, rows) for p, rows in chosen.items()}
    wrong = {p: np.clip(where + 1, 0, 199) for p, where in right.items()}  # a wrong hint is searched again
    for known in (right, wrong, {1: right[1][:-1]}):
        plan = RowPlan(union, 3, chosen, known=known)
        assert all(np.array_equal(plan.positions(p), right[p]) for p in chosen)
    from fedprivacy.errors import InvalidParameters

    with pytest.raises(InvalidParameters):  # a row outside the union, whatever the hint says
        RowPlan(union, 3, {1: np.array([5], dtype=np.uint64)}, known={1: np.array([0])})
