"""Check for claim secagg/8 (see claim-8-consistency-quorum.md), with production clients."""

from __future__ import annotations

import itertools
import math

import pytest

from fedprivacy.errors import InvalidParameters, PolicyViolation
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.policy import ClientPolicy, weakened_policy
from fedprivacy.secagg import (
    SecAggClient,
    SecAggConfig,
    consistency_quorum,
    majority_quorum,
    make_identities,
)

from .attacks import run_equivocation

POLICY_OFF = weakened_policy()  # the threshold is left to the enumeration: the quorum alone decides
SESSION = b"proof: secagg consistency quorum"


def _config(n: int, t: int, quorum: int) -> SecAggConfig:
    return SecAggConfig(tuple(range(1, n + 1)), 3, 1, n - 1, t, SESSION, malicious=True, quorum=quorum)


@pytest.mark.parametrize("n", range(2, 10))
def test_two_sets_share_an_honest_signer_exactly_above_the_bound(n):
    """Counting, exhaustively for n <= 9: give each honest party one of {signs S1, signs S2, signs
    neither} and let c corrupt parties sign both. Some assignment gives both sets q signers iff
    2q <= n + c; the library's quorum for c is the smallest q above that."""
    for c in range(n + 1):
        for q in range(1, n + 1):
            possible = any(
                choice.count(1) + c >= q and choice.count(2) + c >= q
                for choice in itertools.product((0, 1, 2), repeat=n - c)
            )
            assert possible == (2 * q <= n + c), (n, c, q)
        assert majority_quorum(n, c) == min(q for q in range(1, n + c + 2) if 2 * q > n + c)


@pytest.mark.parametrize("c", [0, 1, 2])
def test_the_quorum_alone_stops_the_split_on_the_full_graph(c):
    """Full graph of 7, every threshold t (policy off, down to t = 2), every valid quorum q, c corrupt
    holders of the victim (forked: they sign both stories), every number of honest holders told
    "alive": the victim's input is recovered iff 2 max(q, t) <= n + c. So with 2q > n + c no split
    works whatever t is, and at 2q <= n + c (a quorum that ignores corrupt parties) one does when t
    is low enough: the bound is tight and c must be the client's own."""
    n, victim = 7, 7
    for q in range(n // 2 + 1, n + 1):
        for t in range(2, n + 1):
            config = _config(n, t, q)
            corrupt = frozenset(range(n - c, n)) if c else frozenset()  # the victim's holders 4..6
            honest = [p for p in range(1, n) if p not in corrupt]
            works = False
            for told in range(len(honest) + 1):
                outcome = run_equivocation(config, victim, set(honest[:told]), corrupt, f"claim8/{q}/{t}", policy=POLICY_OFF)
                if not outcome.succeeded:
                    assert min(outcome.seed_shares, outcome.key_shares) < t
                works |= outcome.succeeded
            assert works == (2 * max(q, t) <= n + c), (q, t, c)


def test_a_client_accepts_only_a_quorum_above_its_own_corrupt_bound():
    """The policy side: q = 4 of 7 is a majority only for c = 0 (above: the split works with c = 1);
    a client that assumes gamma = 0.05 (c = 1) refuses it and accepts q = 5; one assuming gamma = 0
    accepts q = 4. The quorum the library picks is exactly the policy's floor."""
    identities, trust = make_identities(range(1, 8), DeterministicRandomness("claim8/identities"))
    four, five = _config(7, 6, 4), _config(7, 6, 5)
    careful = ClientPolicy(corrupt_fraction=0.05)
    with pytest.raises(PolicyViolation, match="quorum"):
        SecAggClient(four, 1, identity=identities[1], trust=trust, policy=careful)
    SecAggClient(five, 1, identity=identities[1], trust=trust, policy=careful)
    SecAggClient(four, 1, identity=identities[1], trust=trust, policy=ClientPolicy(corrupt_fraction=0.0))
    for n in (7, 10, 50, 100, 1000):
        for gamma in (0.0, 0.05, 0.1, 0.3):
            q, c = consistency_quorum(n, gamma), math.ceil(gamma * n - 1e-14)
            policy = ClientPolicy(corrupt_fraction=gamma, adversary="malicious")
            made = {"full_graph": True, "adversary": "malicious", "corrupt_fraction": gamma, "dropout_fraction": 0.0,
                    "threshold": n}
            config = SecAggConfig.create(range(1, n + 1), 2, **made)
            assert config.quorum == q and 2 * q > n + c >= 2 * (q - 1)
            policy.check_secagg_config(config)
            if q - 1 > n // 2:  # still a majority of the parties, not over c corrupt ones: the policy refuses
                with pytest.raises(PolicyViolation, match="quorum"):
                    policy.check_secagg_config(SecAggConfig.create(range(1, n + 1), 2, quorum=q - 1, **made))
            else:  # not even a majority: the config itself is refused
                with pytest.raises(InvalidParameters, match="quorum"):
                    SecAggConfig.create(range(1, n + 1), 2, quorum=q - 1, **made)
