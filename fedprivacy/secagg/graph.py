"""Neighbourhoods: a randomly relabelled Harary graph H(n, k), or the full graph when k = n - 1.

The ring order is a permutation of the sorted party ids drawn from a key that every party derives
from the config digest, so all parties compute the same graph without a message. Each party's
neighbours are the k/2 nearest ring positions on each side. Known limitation: whoever picks the
session id (the server) could grind it to influence the relabelling (``protocols/secagg/spec.md`` §4);
this is within the curious and semi-malicious threat models of §1 but not against a server that also
controls which clients join.
"""

from __future__ import annotations

from ..encoding import domain_tag
from ..hazmat.kex import hkdf
from ..hazmat.prg import random_permutation
from .params import SecAggConfig

__all__ = ["ring_order", "neighbourhood", "all_neighbourhoods"]


def ring_order(config: SecAggConfig) -> tuple[int, ...]:
    """The party ids in ring order (the relabelled Harary graph's positions)."""
    key = hkdf(config.digest, b"", domain_tag("secagg", "graph-relabelling"), 16)
    permutation = random_permutation(config.clients, key)
    return tuple(config.party_ids[int(i)] for i in permutation)


def _neighbours_at(ring: tuple[int, ...], position: int, neighbours: int) -> frozenset[int]:
    n = len(ring)
    if neighbours == n - 1:
        return frozenset(ring[:position] + ring[position + 1 :])
    half = neighbours // 2
    return frozenset(ring[(position + offset) % n] for offset in range(-half, half + 1) if offset)


def neighbourhood(config: SecAggConfig, party_id: int, ring: tuple[int, ...] | None = None) -> frozenset[int]:
    """The k neighbours of ``party_id`` (never the party itself)."""
    ring = ring_order(config) if ring is None else ring
    return _neighbours_at(ring, ring.index(party_id), config.neighbours)


def all_neighbourhoods(config: SecAggConfig) -> dict[int, frozenset[int]]:
    ring = ring_order(config)
    if config.full_graph:
        everyone = frozenset(ring)
        return {party: everyone - {party} for party in ring}
    return {party: _neighbours_at(ring, position, config.neighbours) for position, party in enumerate(ring)}
