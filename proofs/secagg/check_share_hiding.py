"""Check for claim secagg/2 (see claim-2-share-hiding.md): exact enumeration over small fields."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from fedprivacy.hazmat.shamir import reference_reconstruct, reference_share


@pytest.mark.parametrize("prime, threshold", [(7, 2), (7, 3), (11, 2), (11, 3)])
def test_fewer_than_t_shares_are_uniform_and_independent_of_the_secret(prime, threshold):
    points = list(range(1, prime))
    for xs in itertools.combinations(points, threshold - 1):
        distributions = []
        for secret in range(prime):
            counts = Counter(
                tuple(reference_share(secret, list(coefficients), xs, prime))
                for coefficients in itertools.product(range(prime), repeat=threshold - 1)
            )
            assert len(counts) == prime ** (threshold - 1) and set(counts.values()) == {1}
            distributions.append(counts)
        assert all(d == distributions[0] for d in distributions)


@pytest.mark.parametrize("prime, threshold", [(7, 3), (11, 3)])
def test_t_shares_determine_the_secret(prime, threshold):
    for secret in range(prime):
        for coefficients in itertools.product(range(prime), repeat=threshold - 1):
            xs = (1, 3, 5)[:threshold]
            shares = reference_share(secret, list(coefficients), xs, prime)
            assert reference_reconstruct(list(zip(xs, shares)), prime) == secret
