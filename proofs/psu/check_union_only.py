"""Check for claim psu/1 (see claim-1-union-only.md): exact enumeration over tiny fields."""

from __future__ import annotations

import itertools
from collections import Counter
from fractions import Fraction

import pytest

from fedprivacy.psu import PSUParameters, encode_reference

SESSION = b"fedprivacy proof psu union only!"


def q(m: int, p: int) -> Fraction:
    return (1 - Fraction(-1, p - 1) ** (m - 1)) / p


@pytest.mark.parametrize("p", [5, 7])
@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
def test_weight_law(p, m):
    law = Counter(sum(r) % p for r in itertools.product(range(1, p), repeat=m))
    total = (p - 1) ** m
    assert Fraction(law[0], total) == q(m, p)
    assert {Fraction(law[w], total) for w in range(1, p)} == {(1 - q(m, p)) / (p - 1)}


def _sketch_law(params, family, p):
    """Exact distribution of the summed sketch of ``family`` (a list of id sets) over F_p."""
    slots = [(client, x) for client, ids in enumerate(family) for x in sorted(set(ids))]
    law: Counter = Counter()
    for weights in itertools.product(range(1, p), repeat=len(slots)):
        assigned = dict(zip(slots, weights))
        total = [0] * params.vector_length
        for client, ids in enumerate(family):
            distinct = sorted(set(ids))
            sketch = encode_reference(params, distinct, [assigned[(client, x)] for x in distinct], p)
            total = [(a + b) % p for a, b in zip(total, sketch)]
        law[tuple(total)] += 1
    count = (p - 1) ** len(slots)
    return {view: Fraction(c, count) for view, c in law.items()}


def _tv(first, second):
    return sum(abs(first.get(v, 0) - second.get(v, 0)) for v in set(first) | set(second)) / 2


def _zero_pattern_tv(profile_a, profile_b, p):
    """TV between the laws of which ids vanish: products of Bernoulli(q_m)."""
    total = Fraction(0)
    for pattern in itertools.product([0, 1], repeat=len(profile_a)):
        pa = pb = Fraction(1)
        for vanished, ma, mb in zip(pattern, profile_a, profile_b):
            pa *= q(ma, p) if vanished else 1 - q(ma, p)
            pb *= q(mb, p) if vanished else 1 - q(mb, p)
        total += abs(pa - pb)
    return total / 2


def _independent(params, p):
    """The two ids' cell vectors (weights field, id field) are linearly independent over F_p."""
    v1 = encode_reference(params, [1], [1], p)
    v2 = encode_reference(params, [2], [1], p)
    return any((a * d - b * c) % p for (a, b), (c, d) in itertools.combinations(zip(v1, v2), 2))


@pytest.mark.parametrize("p", [5, 7])
def test_view_distance_equals_the_stated_value(p):
    params = PSUParameters(4, 2, SESSION, hashes=3, cells_per_id=3.0)
    assert _independent(params, p)
    families = {
        "A (1,1)": [{1}, {2}],
        "A' (1,1)": [{2}, {1}],
        "B (2,1)": [{1, 2}, {1}],
        "C (2,2)": [{1, 2}, {1, 2}],
        "D (3,1)": [{1}, {1, 2}, {1}],
    }
    profiles = {"A (1,1)": (1, 1), "A' (1,1)": (1, 1), "B (2,1)": (2, 1), "C (2,2)": (2, 2), "D (3,1)": (3, 1)}
    laws = {name: _sketch_law(params, family, p) for name, family in families.items()}
    for a, b in itertools.combinations(families, 2):
        expected = _zero_pattern_tv(profiles[a], profiles[b], p)
        assert _tv(laws[a], laws[b]) == expected, (a, b)
    assert _tv(laws["A (1,1)"], laws["A' (1,1)"]) == 0
    # One id's multiplicity differing: exactly |q_m - q_m'|.
    assert _tv(laws["A (1,1)"], laws["B (2,1)"]) == abs(q(1, p) - q(2, p))
