"""Check for claim ddp/1 (see claim-1-sampler-exact.md): the sampler's arithmetic and output law, exactly."""

from __future__ import annotations

import decimal
import math
from fractions import Fraction

import numpy as np

from fedprivacy.hazmat.discrete_gaussian import (
    _EXP_HI,
    _EXP_LO,
    acceptance_terms,
    discrete_gaussian,
    uniform_below_each,
)
from fedprivacy.hazmat.prg import DeterministicRandomness

from .reference import exp_expansion

_TWO64 = 1 << 64
D = decimal.Decimal


def test_acceptance_exponent_is_exact_on_small_supports():
    """For every S <= 40 and every proposal |y| <= 60 t: the three integer fractions the production
    code draws sum exactly to (|y| t - S)^2 / (2 S t^2), and every numerator and denominator < 2^63."""
    for variance in range(1, 41):
        t = math.isqrt(variance) + 1
        ys = np.arange(-60 * t, 60 * t + 1, dtype=np.int64)
        terms = acceptance_terms(ys, variance, t)
        for index, y in enumerate(ys.tolist()):
            total = sum(Fraction(int(n[index]), int(d)) for n, d in terms)
            assert total == Fraction((abs(y) * t - variance) ** 2, 2 * variance * t * t)
    # the largest variance: bounds on the integers (c < 88 t + 1 since V < 88)
    variance = 1 << 30
    t = math.isqrt(variance) + 1
    terms = acceptance_terms(np.array([88 * t + t - 1], dtype=np.int64), variance, t)
    for n, d in terms:
        assert int(n[0]) < 1 << 63 and int(d) < 1 << 63


def test_expansions_are_exact_floors():
    """floor(exp(-k) 2^128) from the decimal table equals the rigorously bounded rational series."""
    assert [(int(h) << 64) | int(lo) for h, lo in zip(_EXP_HI, _EXP_LO)] == [exp_expansion(k) for k in range(1, 89)]


def test_uniform_words_are_exact():
    """Each bound b: the accepted words [0, 2^64 - (2^64 mod b)) hold every residue equally often, and
    the production code accepts exactly that range (the last accepted and first rejected words)."""
    for bound in (1, 2, 3, 7, 10, 1000, (1 << 62) + 1, 1 << 63, 12345678901234567):
        excess = _TWO64 % bound
        assert (_TWO64 - excess) % bound == 0
        if excess == 0:
            out = uniform_below_each(np.array([bound], dtype=np.uint64), lambda n: (_TWO64 - 1).to_bytes(8, "little"))
            assert int(out[0]) == (_TWO64 - 1) % bound
            continue
        last, first_rejected = _TWO64 - excess - 1, _TWO64 - excess
        words = [first_rejected, last]
        stream = b"".join(w.to_bytes(8, "little") for w in words)
        position = [0]

        def source(n, stream=stream, position=position):
            chunk = stream[position[0] : position[0] + n]
            position[0] += n
            return chunk

        out = uniform_below_each(np.array([bound], dtype=np.uint64), source)
        assert int(out[0]) == last % bound and position[0] == 16  # the first word was rejected, the second kept


def test_bernoulli_exp_series_is_exact():
    """With exact coins, P[K >= k + 1] = gamma^k / k! (coins Bern(r/d) and Bern(1/K) for K >= 2), so
    P[K odd] = sum_j (-1)^j gamma^j / j! = exp(-gamma). Checked to 2^-100 for a grid of gamma = r/d."""
    with decimal.localcontext() as context:
        context.prec = 60
        for r, d in [(1, 1), (1, 2), (3, 7), (6, 7), (1, 1 << 40), ((1 << 40) - 1, 1 << 40)]:
            gamma = Fraction(r, d)
            reach = [Fraction(1)]  # reach[k] = P[K >= k + 1]
            for k in range(1, 60):
                reach.append(reach[-1] * gamma / k)  # first coin gamma at K = 1; then gamma and 1/K
            p_odd = sum(reach[k - 1] - reach[k] for k in range(1, 59, 2))
            exact = (-(D(r) / D(d))).exp()
            assert abs(D(p_odd.numerator) / D(p_odd.denominator) - exact) < D(2) ** -100


def _algorithm_pmf(variance: int, support: int) -> dict[int, decimal.Decimal]:
    """The output law of CKS Algorithms 2-3 as the production code composes them, from the component
    probabilities: U uniform below t accepted w.p. exp(-U/t); V with P[V = v] = exp(-v)(1 - exp(-1));
    sign fair with (-, 0) rejected; Y accepted w.p. exp(-(|Y| t - S)^2 / (2 S t^2))."""
    t = math.isqrt(variance) + 1
    weights = {}
    for y in range(-support, support + 1):
        x = abs(y)
        u, v = x % t, x // t
        proposal = (D(1) / t) * (-D(u) / t).exp() * (-D(v)).exp() * (1 - (-D(1)).exp()) / 2
        accept = (-(D(x * t - variance) ** 2) / (2 * variance * t * t)).exp()
        weights[y] = proposal * accept
    total = sum(weights.values())
    return {y: w / total for y, w in weights.items()}


def test_output_law_is_the_discrete_gaussian_on_small_supports():
    """The composed law equals exp(-y^2/(2S)) / sum, to 10^-40, for S = 1..12 (support +-40 sqrt(S) + 40;
    the mass outside is below 10^-300 for both)."""
    with decimal.localcontext() as context:
        context.prec = 60
        for variance in range(1, 13):
            support = 40 * math.isqrt(variance) + 40
            composed = _algorithm_pmf(variance, support)
            target = {y: (-D(y * y) / (2 * variance)).exp() for y in range(-support, support + 1)}
            norm = sum(target.values())
            for y in range(-support, support + 1):
                assert abs(composed[y] - target[y] / norm) < D(10) ** -40


def _chi_square_flags(samples: np.ndarray, variance: int) -> bool:
    """Pearson chi-square against N_Z(0, variance); flags above dof + 7 sqrt(2 dof) (false alarm < 1e-6)."""
    root = math.isqrt(variance)
    support = np.arange(-12 * root - 12, 12 * root + 13)
    weights = np.exp(-(support.astype(float) ** 2) / (2 * variance))
    expected = weights / weights.sum() * samples.size
    counts = np.bincount(samples - support[0], minlength=support.size)[: support.size]
    keep = expected >= 20
    chi2 = float((((counts[keep] - expected[keep]) ** 2) / expected[keep]).sum())
    dof = int(keep.sum()) - 1
    return chi2 > dof + 7 * math.sqrt(2 * dof)


def test_production_samples_follow_the_law_and_mutants_are_caught():
    """Seeded: 10^6 production samples pass; a sampler with twice the variance and a rounded continuous
    Gaussian (the float shortcut) are flagged by the same test."""
    for variance in (1, 3, 30):
        production = discrete_gaussian(variance, 1_000_000, DeterministicRandomness(f"exact/{variance}"))
        assert not _chi_square_flags(production, variance)
        wrong_scale = discrete_gaussian(2 * variance, 1_000_000, DeterministicRandomness(f"exact-2/{variance}"))
        assert _chi_square_flags(wrong_scale, variance)
    rng = np.random.default_rng(1)  # the mutant's own float noise (a test double, not a secret)
    rounded = np.rint(rng.normal(0, 1.0, 1_000_000)).astype(np.int64)
    assert _chi_square_flags(rounded, 1)


def test_table_entries_are_certified_floors():
    """The production (table) sampler: for S = 1..30 every entry F_k equals floor(C_k 2^128) computed
    independently (direct decimal exponentials at 120 digits, no recurrence), where C_k is the
    restricted law's distribution function; sampling returns k with probability (F_k - F_{k-1}) 2^-128
    exactly (a lazily read real against exact 128-bit entries), so its distance from N_Z(0, S) is the
    table's: at most 2L 2^-128 + the tail beyond L (spec §3), below 2^-107."""
    from fedprivacy.hazmat.discrete_gaussian import TABLE_TOTAL_VARIATION_LOG2, gaussian_table

    with decimal.localcontext() as context:
        context.prec = 120
        for variance in range(1, 31):
            hi, lo, limit = gaussian_table(variance)
            weights = [(-D(x * x) / (2 * variance)).exp() for x in range(-limit, limit + 1)]
            total = sum(weights)
            running = D(0)
            for k in range(2 * limit):
                running += weights[k]
                assert (int(hi[k]) << 64) | int(lo[k]) == int(running / total * D(2) ** 128)
            # the tail: the mass beyond L relative to the total, with the rest of the distance
            tail = 2 * sum((-D(x * x) / (2 * variance)).exp() for x in range(limit + 1, limit + 200)) / total
            assert tail + 2 * limit * D(2) ** -128 < D(2) ** TABLE_TOTAL_VARIATION_LOG2
    _, _, limit = gaussian_table(1 << 30)  # the largest table: still below 2^20 entries
    assert 2 * limit + 1 < 1 << 20
