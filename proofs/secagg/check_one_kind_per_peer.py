"""Check for claim secagg/3 (see claim-3-one-kind-per-peer.md), with production clients."""

from __future__ import annotations

import copy
import itertools

import numpy as np

from fedprivacy.errors import FedPrivacyError
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.secagg import SecAggClient, SecAggConfig, SecAggServer
from fedprivacy.secagg.messages import UnmaskRequest

LABELS = ("alive", "dropped", "both", "absent")


def _clients_at_unmasking(threshold: int, parties: int = 5, neighbours: int = 4):
    config = SecAggConfig(tuple(range(1, parties + 1)), 2, 1, neighbours, threshold, b"proof: secagg one kind per peer!")
    server = SecAggServer(config)
    clients = {p: SecAggClient(config, p, random_bytes=DeterministicRandomness(f"kind{p}")) for p in config.party_ids}
    for client in clients.values():
        for message in client.start():
            server.receive(message)
    for out in server.close_stage():
        for message in clients[out.recipient].receive(out.message):
            server.receive(message)
    for out in server.close_stage():
        clients[out.recipient].receive(out.message)
        for message in clients[out.recipient].submit_input(np.zeros(2, dtype=np.uint32)):
            server.receive(message)
    return clients


def _copy(client: SecAggClient) -> SecAggClient:
    """An independent copy of a client's state (its randomness source is shared, not copied)."""
    return copy.deepcopy(client, {id(client._random_bytes): client._random_bytes})  # noqa: SLF001


def _request(recipient: int, labelling: dict[int, str]) -> UnmaskRequest:
    alive = tuple(sorted(p for p, label in labelling.items() if label in ("alive", "both")))
    dropped = tuple(sorted(p for p, label in labelling.items() if label in ("dropped", "both")))
    return UnmaskRequest(recipient, alive, dropped)


def _released(client: SecAggClient, request: UnmaskRequest) -> tuple[set[int], set[int]]:
    try:
        (response,) = client.receive(request)
    except FedPrivacyError:
        return set(), set()
    return {o for o, _ in response.seed_shares}, {o for o, _ in response.key_shares}


def test_no_pair_of_requests_extracts_both_kinds():
    client = _clients_at_unmasking(threshold=3)[1]
    peers = sorted(client.mask_peers)
    labellings = [dict(zip(peers, labels)) for labels in itertools.product(LABELS, repeat=len(peers))]
    answered = 0
    for first in labellings:
        base = _copy(client)
        seeds, keys = _released(base, _request(1, first))
        if not seeds and not keys:
            continue
        answered += 1
        for second in labellings[:: 7]:  # every 7th labelling as the follow-up (37 of 256)
            fresh = _copy(base)
            more_seeds, more_keys = _released(fresh, _request(1, second))
            assert not ((seeds | more_seeds) & (keys | more_keys))
    assert answered > 0


def _max_collectable(threshold: int, target: int = 5) -> tuple[int, int]:
    """For every labelling of ``target`` by each other client, the most shares of each kind of
    ``target`` the server collects; returns the best (seed, key) pair by min."""
    clients = _clients_at_unmasking(threshold)
    best = (0, 0)
    others = [p for p in clients if p != target]
    for labels in itertools.product(("alive", "dropped"), repeat=len(others)):
        seeds = 1  # the target, alive in its own view, releases its own seed share when asked
        keys = 0
        for holder, label in zip(others, labels):
            client = _copy(clients[holder])
            labelling = {p: "alive" for p in client.mask_peers}
            labelling[target] = label
            got_seeds, got_keys = _released(client, _request(holder, labelling))
            seeds += target in got_seeds
            keys += target in got_keys
        if min(seeds, keys) > min(best):
            best = (seeds, keys)
    return best


def test_semi_malicious_threshold_defeats_equivocation():
    seeds, keys = _max_collectable(threshold=3)  # t = 3 > (5 holders) / 2
    assert min(seeds, keys) < 3


def test_small_threshold_does_not():
    seeds, keys = _max_collectable(threshold=2)  # the check is not vacuous
    assert min(seeds, keys) >= 2


def test_sparse_graph_with_a_corrupt_neighbour():
    """H(7, 4), t = 3: the target's four neighbours hold its shares (not the target itself); one of
    them is corrupt and hands over both kinds; the honest three are labelled by the server at will."""
    clients = _clients_at_unmasking(threshold=3, parties=7, neighbours=4)
    target = 1
    holders = sorted(p for p, c in clients.items() if target in c.mask_peers)
    assert len(holders) == 4
    corrupt, honest = holders[0], holders[1:]
    best = 0
    for labels in itertools.product(("alive", "dropped"), repeat=len(honest)):
        seeds = keys = 1  # the corrupt holder gives both
        for holder, label in zip(honest, labels):
            client = _copy(clients[holder])
            labelling = {p: "alive" for p in client.mask_peers}
            labelling[target] = label
            got_seeds, got_keys = _released(client, _request(holder, labelling))
            seeds += target in got_seeds
            keys += target in got_keys
        best = max(best, min(seeds, keys))
    assert best < 3
    del corrupt
