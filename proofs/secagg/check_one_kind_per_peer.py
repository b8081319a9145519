"""Check for claim secagg/3 (see claim-3-one-kind-per-peer.md), with production clients."""

from __future__ import annotations

import copy
import itertools

import numpy as np

from fedprivacy.errors import FedPrivacyError
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.policy import weakened_policy
from fedprivacy.secagg import SecAggClient, SecAggConfig, SecAggServer
from fedprivacy.secagg.messages import UnmaskRequest

LABELS = ("alive", "dropped", "both", "absent")


def _clients_at_unmasking(threshold: int, parties: int = 5, neighbours: int = 4):
    config = SecAggConfig(tuple(range(1, parties + 1)), 2, 1, neighbours, threshold, b"proof: secagg one kind per peer!")
    server = SecAggServer(config)
    clients = {p: SecAggClient(config, p, random_bytes=DeterministicRandomness(f"kind{p}"), policy=weakened_policy()) for p in config.party_ids}
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


def _worst_equivocation(clients, target: int, honest: list[int], seeds: int, keys: int) -> tuple[int, int]:
    """Over every way the server labels ``target`` alive or dropped in each honest holder's request,
    the (seed, key) share counts of ``target`` it collects, starting from ``seeds``/``keys`` shares
    it already has; returns the labelling that maximises the smaller count."""
    best = (0, 0)
    for labels in itertools.product(("alive", "dropped"), repeat=len(honest)):
        got = [seeds, keys]
        for holder, label in zip(honest, labels):
            client = _copy(clients[holder])
            labelling = {p: "alive" for p in client.mask_peers}
            labelling[target] = label
            got_seeds, got_keys = _released(client, _request(holder, labelling))
            got[0] += target in got_seeds
            got[1] += target in got_keys
        if min(got) > min(best):
            best = (got[0], got[1])
    return best


def _max_collectable(threshold: int, target: int = 5) -> tuple[int, int]:
    """Full graph of 5: the target (alive in its own view) releases its own seed share when asked."""
    clients = _clients_at_unmasking(threshold)
    return _worst_equivocation(clients, target, [p for p in clients if p != target], seeds=1, keys=0)


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
    honest = holders[1:]  # holders[0] is the corrupt one: it contributes one share of each kind
    seeds, keys = _worst_equivocation(clients, target, honest, seeds=1, keys=1)
    assert min(seeds, keys) < 3
