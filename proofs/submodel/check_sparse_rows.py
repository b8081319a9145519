"""Check for claim submodel/2 (see claim-2-sparse-rows.md): a row's mask graph on a sparse rows' graph.

Runs the production plan (``RowPlan`` on a sparse ring: who masks which row with whom) and the
production bound (``fedprivacy.secagg.rowgraph``)."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np

from fedprivacy.hazmat.field import Modulus
from fedprivacy.secagg import RowPlan, SecAggConfig
from fedprivacy.secagg.graph import ring_order
from fedprivacy.secagg.rowgraph import (
    ROW_SECURITY_BITS,
    exact_disconnection_probability,
    log_disconnection_bound,
    row_graph_degree,
    row_graph_survivors,
)


def _components_per_row(n: int, k: int, subsets: list[tuple[int, ...]], session: bytes) -> list[int]:
    """For row r chosen by the ring positions ``subsets[r]``: the number of connected components of its
    mask graph, read from the production plan (each chooser's partners on the row)."""
    config = SecAggConfig(tuple(range(1, n + 1)), 1, Modulus.U64, k, 2, session)
    ring = ring_order(config)
    chosen: dict[int, list[int]] = {party: [] for party in ring}
    for row, members in enumerate(subsets):
        for position in members:
            chosen[ring[position]].append(row)
    plan = RowPlan(np.arange(len(subsets), dtype=np.uint64), 1,
                   {p: np.array(rows, dtype=np.uint64) for p, rows in chosen.items()}, ring=ring, neighbours=k)
    adjacency: dict[int, dict[int, set[int]]] = {row: {ring[p]: set() for p in members} for row, members in enumerate(subsets)}
    for party in ring:
        for peer, rows in plan.for_client(party).shared.items():
            for row in rows.tolist():
                adjacency[row][party].add(peer)
    counts = []
    for row in range(len(subsets)):
        graph, seen, components = adjacency[row], set(), 0
        for start in graph:
            if start in seen:
                continue
            components += 1
            frontier = [start]
            while frontier:
                u = frontier.pop()
                if u not in seen:
                    seen.add(u)
                    frontier += list(graph[u] - seen)
        counts.append(components)
    return counts


def test_the_disconnection_probability_is_exact_by_enumeration_of_the_production_plan():
    for n, k in ((10, 2), (12, 4), (13, 6)):
        for h in range(2, 7):
            subsets = list(itertools.combinations(range(n), h))
            components = _components_per_row(n, k, subsets, b"claim submodel/2 enumeration %d %d" % (n, k))
            disconnected = sum(c > 1 for c in components)
            assert Fraction(disconnected, len(subsets)) == exact_disconnection_probability(n, k, h), (n, k, h)
            assert math.exp(log_disconnection_bound(n, k, h)) >= disconnected / len(subsets) - 1e-12


def test_a_seeded_monte_carlo_run_agrees_with_the_exact_probability():
    # 20,000 rows of h = 14 random choosers on H(200, 60), P exact 0.52 (seeded: public test randomness). The
    # two-sided acceptance band is +-5.3 standard deviations: a false-positive rate below 1e-7 for a
    # correct implementation under fresh seeds.
    n, k, h, trials = 200, 60, 14, 20_000
    rng = np.random.default_rng(20_240_214)
    subsets = [tuple(sorted(rng.choice(n, h, replace=False).tolist())) for _ in range(trials)]
    components = _components_per_row(n, k, subsets, b"claim submodel/2 monte carlo")
    observed = sum(c > 1 for c in components) / trials
    exact = float(exact_disconnection_probability(n, k, h))
    sigma = math.sqrt(exact * (1 - exact) / trials)
    assert 0.05 < exact < 0.95 and abs(observed - exact) < 5.3 * sigma, (observed, exact)
    assert math.exp(log_disconnection_bound(n, k, h)) >= exact


def test_the_chosen_degree_meets_the_bound_with_the_exact_probability_below_it():
    limit = Fraction(1, 2**ROW_SECURITY_BITS)
    for n in (1001, 2000, 3000, 5000, 10_000):
        h = row_graph_survivors(n, 0.05)
        k = row_graph_degree(n, h)
        assert k < n - 1 and k % 2 == 0
        assert log_disconnection_bound(n, k, h) < -ROW_SECURITY_BITS * math.log(2)
        assert log_disconnection_bound(n, k - 2, h) >= -ROW_SECURITY_BITS * math.log(2)  # the smallest such k
        assert exact_disconnection_probability(n, k, h) < limit
        # More honest survivors only help: the bound falls with h above the design point.
        assert log_disconnection_bound(n, k, 2 * h) < log_disconnection_bound(n, k, h)
