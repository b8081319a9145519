"""Sparse per-row neighbourhoods: how large the rows' SecAgg+ graph must be for a row to stay connected.

In a per-row sum over a SecAgg+ graph (``protocols/submodel/spec.md``, "Sparse rows"), a chooser of a
row masks it with its graph neighbours that chose the same row, and with nobody else. The row's mask
graph is therefore the graph induced on the row's choosers, and the server learns the sum of each
connected component of the induced graph on the honest survivors (the masks inside a component cancel
only in its sum). This module bounds the probability that this induced graph is disconnected and
picks the smallest degree that keeps the bound below 2^-40.

The graph is the randomly relabelled Harary graph H(n, k) of ``graph.py``: ring positions are a
uniformly random permutation, u and v adjacent iff their ring distance is at most k/2. For a set of h
ring positions chosen independently of the relabelling, consecutive members (in ring order) are
adjacent iff fewer than k/2 non-members lie between them, and the induced graph is disconnected iff
at least two of the h cyclic gaps hold k/2 or more non-members (one long gap leaves a path; two
separate two arcs, and any edge between the arcs would span a whole gap). With a member at position
0 (rotation symmetry) the gap vector is uniform over the C(n - 1, h - 1) compositions of n - h, and the
compositions with s chosen gaps of at least g number C(n - 1 - s g, h - 1); hence, with g = k/2,

    P[disconnected] = sum_{s >= 2} (-1)^s (s - 1) C(h, s) C(n - 1 - s g, h - 1) / C(n - 1, h - 1)
                   <= C(h, 2) C(n - 1 - k, h - 1) / C(n - 1, h - 1).

``exact_disconnection_probability`` is the first line (exact rationals), ``log_disconnection_bound``
the second (floats, what the parameter choice uses); ``proofs/submodel/check_sparse_rows.py`` checks
both against enumeration and a seeded Monte-Carlo run. What leaks is in the spec.
"""

from __future__ import annotations

import math
from fractions import Fraction

from ..errors import InvalidParameters

__all__ = [
    "ROW_SECURITY_BITS",
    "exact_disconnection_probability",
    "log_disconnection_bound",
    "row_graph_degree",
    "row_graph_survivors",
]

ROW_SECURITY_BITS = 40  # a row with at least the stated honest survivors disconnects with probability < 2^-40


def _log_choose(a: int, b: int) -> float:
    if b < 0 or b > a:
        return -math.inf
    return math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)


def _check(clients: int, neighbours: int, survivors: int) -> None:
    if not isinstance(clients, int) or clients < 3:
        raise InvalidParameters(f"clients must be an integer >= 3, got {clients!r}")
    if not isinstance(neighbours, int) or not 2 <= neighbours <= clients - 1:
        raise InvalidParameters(f"neighbours must be in [2, {clients - 1}], got {neighbours!r}")
    if neighbours < clients - 1 and neighbours % 2:
        raise InvalidParameters(f"a sparse graph's neighbours must be even, got {neighbours}")
    if not isinstance(survivors, int) or not 0 <= survivors <= clients:
        raise InvalidParameters(f"survivors must be in [0, {clients}], got {survivors!r}")


def log_disconnection_bound(clients: int, neighbours: int, survivors: int) -> float:
    """Natural log of the union bound C(h, 2) C(n-1-k, h-1) / C(n-1, h-1) (capped at 0) that h =
    ``survivors`` positions, placed independently of the relabelling, induce a disconnected subgraph
    of H(n, k); -inf when disconnection is impossible (the full graph, h <= 1, or k too large)."""
    _check(clients, neighbours, survivors)
    h = survivors
    if neighbours == clients - 1 or h <= 1:
        return -math.inf
    value = math.log(h * (h - 1) / 2) + _log_choose(clients - 1 - neighbours, h - 1) - _log_choose(clients - 1, h - 1)
    return min(0.0, value)


def exact_disconnection_probability(clients: int, neighbours: int, survivors: int) -> Fraction:
    """The exact probability (inclusion-exclusion over the gaps of at least k/2 non-members)."""
    _check(clients, neighbours, survivors)
    h = survivors
    if neighbours == clients - 1 or h <= 1:
        return Fraction(0)
    gap = neighbours // 2
    total = math.comb(clients - 1, h - 1)
    acc = 0
    for s in range(2, h + 1):
        rest = clients - 1 - s * gap
        if rest < h - 1:
            break
        acc += (-1) ** s * (s - 1) * math.comb(h, s) * math.comb(rest, h - 1)
    return Fraction(acc, total)


def row_graph_survivors(clients: int, survivor_fraction: float) -> int:
    """The honest surviving choosers a row is assumed to keep: ceil(fraction x n), at least 2."""
    if not (isinstance(survivor_fraction, (int, float)) and 0 < survivor_fraction <= 1):
        raise InvalidParameters(f"survivor_fraction must be in (0, 1], got {survivor_fraction!r}")
    return max(2, min(clients, math.ceil(survivor_fraction * clients - 1e-9)))


def row_graph_degree(clients: int, survivors: int, security_bits: int = ROW_SECURITY_BITS) -> int:
    """The smallest even k in [2, n - 2] for which h = ``survivors`` honest surviving choosers of a row
    induce a connected subgraph of H(n, k) except with probability below 2^-security_bits; n - 1 (the
    full graph) when none qualifies. Monotone in k, so a bisection over the even degrees."""
    _check(clients, 2 if clients > 3 else clients - 1, survivors)
    limit = -security_bits * math.log(2)
    low, high = 1, (clients - 2) // 2  # degrees 2 * low ... 2 * high
    if high < 1 or log_disconnection_bound(clients, 2 * high, survivors) >= limit:
        return clients - 1
    while low < high:
        middle = (low + high) // 2
        if log_disconnection_bound(clients, 2 * middle, survivors) < limit:
            high = middle
        else:
            low = middle + 1
    return 2 * low
