"""Claim secagg/6: the client's threshold bound (see claim-6-client-threshold-bound.md)."""

from __future__ import annotations

import math

import pytest

from fedprivacy.errors import InvalidParameters
from fedprivacy.secagg import Adversary, check_graph_parameters, minimum_threshold


@pytest.mark.parametrize("adversary", list(Adversary))
@pytest.mark.parametrize("gamma", [0.0, 0.05, 0.1, 0.2])
def test_the_search_never_picks_below_the_clients_bound(adversary, gamma):
    checked = 0
    for n in range(3, 61):
        for k in [*range(2, n - 1, 2), n - 1]:
            try:
                picked = check_graph_parameters(n, k, None, gamma, 0.1, adversary).threshold
            except InvalidParameters:
                continue  # no secure and correct t for this k: the server cannot use it at all
            assert picked >= minimum_threshold(n, k, gamma, adversary), (n, k, gamma)
            checked += 1
    assert checked > 100


@pytest.mark.parametrize("gamma", [0.0, 0.05, 0.2])
def test_no_split_of_the_holders_reaches_t_of_both_kinds(gamma):
    for n in range(3, 61):
        for k in [*range(2, n - 1, 2), n - 1]:
            t = minimum_threshold(n, k, gamma, Adversary.SEMI_MALICIOUS)
            holders = n if k == n - 1 else k
            if k == n - 1:
                assert 2 * t - holders > math.ceil(gamma * n - 1e-14)  # the assumed colluders are tolerated
            for corrupt in range(0, 2 * t - holders):
                for alive in range(holders - corrupt + 1):  # honest holders told "alive"; the rest "dropped"
                    seeds, keys = alive + corrupt, holders - corrupt - alive + corrupt
                    assert min(seeds, keys) < t, (n, k, t, corrupt, alive)
            # and the curious bound does not have this property (the check is not vacuous):
            curious = minimum_threshold(n, k, gamma, Adversary.CURIOUS)
            if holders >= 4 and curious <= holders // 2:
                assert min(holders // 2, holders - holders // 2) >= curious
