"""SecAgg+ parameter search and validation."""

from __future__ import annotations

import pytest

from fedprivacy.errors import InvalidParameters
from fedprivacy.hazmat.field import Modulus
from fedprivacy.secagg import SecAggConfig, check_graph_parameters, find_graph_parameters
from fedprivacy.secagg.graph import all_neighbourhoods, neighbourhood, ring_order

# Rows of the reference finder's test table (google-parfait/federated-compute,
# graph_parameter_finder_test.cc) and independently re-derived rows; 2^-40 security, 2^-20 correctness.
REFERENCE_ROWS = [
    (100, 0.05, 0.05, (12, 6), (16, 11)),
    (1000, 0.05, 0.05, (30, 17), (52, 37)),
    (10**4, 0.05, 0.05, (34, 20), (62, 44)),
    (10**6, 0.05, 0.05, (38, 22), (74, 52)),
    (1000, 0.05, 0.33, (72, 24), (398, 223)),
    (100, 0.33, 0.33, (68, 34), None),
    (10**5, 0.33, 0.33, (480, 251), None),
    (100, 0.0, 0.0, (2, 2), (2, 2)),
    (100, 0.05, 0.10, (16, 6), (26, 16)),
    (100, 0.10, 0.10, (22, 11), (32, 22)),
    (100, 0.05, 0.30, (26, 6), (66, 36)),
    (500, 0.05, 0.10, (32, 17), (66, 44)),
    (500, 0.10, 0.10, (42, 24), (82, 57)),
    (500, 0.05, 0.30, (58, 20), (212, 119)),
    (1000, 0.10, 0.10, (48, 27), (96, 67)),
    (10**4, 0.10, 0.10, (54, 31), (122, 85)),
]


@pytest.mark.parametrize("n, gamma, delta, curious, semi", REFERENCE_ROWS)
def test_search_reproduces_reference_rows(n, gamma, delta, curious, semi):
    found = find_graph_parameters(n, gamma, delta, "curious")
    assert (found.neighbours, found.threshold) == curious
    if semi is None:
        with pytest.raises(InvalidParameters):
            find_graph_parameters(n, gamma, delta, "semi-malicious")
    else:
        found = find_graph_parameters(n, gamma, delta, "semi-malicious")
        assert (found.neighbours, found.threshold) == semi


def test_fixed_pairs_are_checked_with_the_same_bounds():
    assert check_graph_parameters(100, 22, 11, 0.1, 0.1).threshold == 11
    assert check_graph_parameters(100, 20, None, 0.05, 0.1).threshold >= 2
    with pytest.raises(InvalidParameters, match="insecure"):
        check_graph_parameters(100, 22, 10, 0.1, 0.1)  # t below the corrupt-neighbour bound
    with pytest.raises(InvalidParameters, match="incorrect"):
        check_graph_parameters(100, 22, 20, 0.1, 0.1)  # t above the survivor bound
    with pytest.raises(InvalidParameters, match="disconnect"):
        check_graph_parameters(100, 4, None, 0.1, 0.1)
    with pytest.raises(InvalidParameters, match="even"):
        check_graph_parameters(100, 21, None)


def test_full_graph_rules():
    assert check_graph_parameters(500, 499, None, 0.05, 0.3).threshold == 350
    with pytest.raises(InvalidParameters):
        check_graph_parameters(500, 499, 349, 0.05, 0.3)
    semi = check_graph_parameters(10, 9, None, 0.1, 0.1, "semi-malicious")
    assert semi.threshold > (10 + 1) / 2
    # No even k < n - 1 exists for n = 3: the search falls back to the full graph.
    small = find_graph_parameters(3, 0.0, 0.3)
    assert small.full_graph and small.threshold == 3


@pytest.mark.parametrize(
    "kwargs",
    [dict(corrupt_fraction=1.0), dict(dropout_fraction=-0.1), dict(corrupt_fraction=0.5, dropout_fraction=0.5),
     dict(corrupt_fraction=float("nan"))],
)
def test_invalid_rates(kwargs):
    with pytest.raises(InvalidParameters):
        SecAggConfig.create(range(1, 101), 10, **kwargs)


def test_config_validation():
    ok = SecAggConfig.create(range(1, 101), 10, neighbours=20, dropout_fraction=0.1, adversary="curious")
    assert ok.neighbours == 20 and ok.threshold >= 2 and len(ok.session_id) == 32
    with pytest.raises(InvalidParameters):
        SecAggConfig((1, 1, 2), 4, Modulus.U32, 2, 2, b"s" * 16)
    with pytest.raises(InvalidParameters):
        SecAggConfig((0, 1, 2), 4, Modulus.U32, 2, 2, b"s" * 16)
    with pytest.raises(InvalidParameters):
        SecAggConfig((1, 2, 3), 4, Modulus.U32, 2, 4, b"s" * 16)  # t > k + 1
    with pytest.raises(InvalidParameters):
        SecAggConfig((1, 2, 3), 0, Modulus.U32, 2, 2, b"s" * 16)
    with pytest.raises(InvalidParameters):
        SecAggConfig((1, 2, 3), 4, Modulus.U32, 2, 2, b"short")
    with pytest.raises(InvalidParameters):
        SecAggConfig.create(range(1, 11), 4, threshold=3)  # t without k


def test_harary_neighbourhoods_are_symmetric_regular_and_relabelled():
    cfg = SecAggConfig.create(range(1, 41), 4, neighbours=6, dropout_fraction=0.0, corrupt_fraction=0.0)
    graph = all_neighbourhoods(cfg)
    assert all(len(peers) == 6 and p not in peers for p, peers in graph.items())
    assert all(p in graph[q] for p, peers in graph.items() for q in peers)
    assert neighbourhood(cfg, 7) == graph[7]
    assert ring_order(cfg) != tuple(range(1, 41))  # relabelled
    other = SecAggConfig.create(range(1, 41), 4, neighbours=6, dropout_fraction=0.0, corrupt_fraction=0.0)
    assert ring_order(other) != ring_order(cfg)  # a new session gives a new relabelling


@pytest.mark.parametrize("n", range(3, 41))
@pytest.mark.parametrize("gamma, delta", [(0.0, 0.0), (0.05, 0.1), (0.05, 0.17), (0.05, 0.2), (0.1, 0.3)])
def test_every_searched_pair_passes_its_own_check(n, gamma, delta):
    """Small n: the search never returns a threshold above its own correctness bound (t <= t_high)."""
    try:
        found = find_graph_parameters(n, gamma, delta)
    except InvalidParameters:
        return
    checked = check_graph_parameters(n, found.neighbours, found.threshold, gamma, delta)
    assert checked == found
