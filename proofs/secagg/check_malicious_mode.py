"""Check for claim secagg/7 (see claim-7-malicious-mode.md), with production clients."""

from __future__ import annotations

import pytest

from fedprivacy.secagg import Adversary, SecAggConfig, check_graph_parameters, find_graph_parameters
from fedprivacy.secagg.graph import all_neighbourhoods

from fedprivacy.policy import weakened_policy

from .attacks import run_equivocation, run_key_substitution

POLICY_OFF = weakened_policy()  # thresholds below the bound are what the enumeration needs
SESSION = b"proof: secagg malicious mode!!!!"


def _config(n: int, k: int, t: int, malicious: bool = True) -> SecAggConfig:
    return SecAggConfig(tuple(range(1, n + 1)), 3, 1, k, t, SESSION, malicious=malicious)


def _attack_works(config, victim, honest, corrupt, name) -> bool:
    """Whether any split of the honest holders (and either story for the bystanders) recovers the
    victim's input; asserts that every failed attempt stays below t shares of one kind."""
    works = False
    for bystanders in ("alive", "dropped"):
        for told in range(len(honest) + 1):
            outcome = run_equivocation(config, victim, set(honest[:told]), corrupt, name, bystanders, POLICY_OFF)
            if not outcome.succeeded:
                assert min(outcome.seed_shares, outcome.key_shares) < config.threshold
            works |= outcome.succeeded
    return works


@pytest.mark.parametrize("n,k", [(7, 6), (9, 4)])
def test_equivocation_never_succeeds_above_the_bound(n, k):
    """Above the bound no split works (both graphs). At or below it a split works on the full graph
    (the bound is tight there); on a sparse graph the per-peer signature rule can stop it even below
    the bound, and the check records that it still works in some cases (so it is not vacuous)."""
    victim = n
    below = {True: 0, False: 0}
    for t in range(2, k + 2 if k == n - 1 else k + 1):  # the policy is off: the protocol alone decides
        config = _config(n, k, t)
        holders = sorted(all_neighbourhoods(config)[victim])  # the victim's neighbours
        size = len(holders) + (1 if config.full_graph else 0)  # h + c
        for c in range(3):
            corrupt = frozenset(holders[-c:]) if c else frozenset()
            honest = [p for p in holders if p not in corrupt]
            works = _attack_works(config, victim, honest, corrupt, f"claim6/{n}/{t}")
            if 2 * t > size + c:
                assert not works, (n, k, t, c)
            else:
                below[works] += 1
                if config.full_graph:
                    assert works, (n, k, t, c)
    assert below[True] > 0


@pytest.mark.parametrize("full_graph", [True, False])
def test_library_malicious_parameters_defeat_every_split(full_graph):
    n = 10
    graph = (
        check_graph_parameters(n, n - 1, None, 0.05, 0.1, Adversary.MALICIOUS)
        if full_graph
        else find_graph_parameters(n, 0.05, 0.1, Adversary.MALICIOUS)
    )
    config = _config(n, graph.neighbours, graph.threshold)
    holders = sorted(all_neighbourhoods(config)[n])
    for told in range(len(holders) + 1):
        outcome = run_equivocation(config, n, set(holders[:told]), name="claim6/library")
        assert not outcome.succeeded and min(outcome.seed_shares, outcome.key_shares) < graph.threshold


@pytest.mark.parametrize("n,k,t", [(7, 6, 6), (9, 4, 3), (9, 4, 4)])
def test_key_substitution_needs_identities(n, k, t):
    assert run_key_substitution(_config(n, k, t, malicious=False), victim=2, policy=POLICY_OFF).succeeded
    outcome = run_key_substitution(_config(n, k, t), victim=2)
    assert not outcome.succeeded and outcome.seed_shares == outcome.key_shares == 0
