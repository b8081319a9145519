"""Check for claim ddp/2 (see claim-2-noise-sum.md): the row sums' noise and the charged rho."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from fedprivacy.ddp import DDPSettings, client_variance, kls_tau, noise_floor, zcdp_rho
from fedprivacy.hazmat.discrete_gaussian import discrete_gaussian, discrete_gaussian_table
from fedprivacy.hazmat.prg import DeterministicRandomness


def _pmf(variance: float, support: int) -> np.ndarray:
    xs = np.arange(-support, support + 1, dtype=np.float64)
    w = np.exp(-(xs**2) / (2 * variance))
    return w / w.sum()


def _renyi(p: np.ndarray, q: np.ndarray, alpha: float) -> float:
    mask = (p > 1e-250) & (q > 1e-250)  # the rest carries below 10^-200 of either law
    terms = np.exp(alpha * np.log(p[mask]) + (1 - alpha) * np.log(q[mask]))
    return math.log(float(terms.sum())) / (alpha - 1)


def test_sum_of_discrete_gaussians_meets_the_kls_bound():
    """The exact law of the sum of n independent N_Z(0, S) (convolution; terms below 10^-250 dropped), shifted by Delta: D_alpha <= alpha Delta^2 / (2 n S) + tau (KLS, per coordinate),
    for n in {2, 3, 5}, S in {1, 2, 4}, Delta in {1, 3}, alpha in {1.5, 2, 4, 8}."""
    for n in (2, 3, 5):
        for variance in (1, 2, 4):
            support = int(12 * math.sqrt(variance)) + 12
            one = _pmf(variance, support)
            total = one
            for _ in range(n - 1):
                total = np.convolve(total, one)
            tau = kls_tau(variance, n)
            for delta in (1, 3):
                shifted = np.concatenate([np.zeros(delta), total[:-delta]])
                for alpha in (1.5, 2.0, 4.0, 8.0):
                    divergence = _renyi(total, shifted, alpha)
                    assert divergence <= alpha * delta**2 / (2 * n * variance) + tau + 1e-9
                    # and the bound is nearly tight: an accountant charging half of it would be caught here
                    assert divergence > 0.6 * alpha * delta**2 / (2 * n * variance)


def test_every_allowed_chooser_count_carries_the_target_noise():
    """Exhaustively over small public numbers: with each client adding S = client_variance(floor), any
    row with k >= floor contributors has variance k S >= (z Delta)^2, and the charged rho is at least the
    Gaussian rho Delta^2 / (2 floor S)."""
    for clients in range(2, 13):
        for threshold in range(1, clients + 1):
            for min_choosers in range(1, clients + 1):
                for colluders in (0, 1, 3):
                    floor = noise_floor(min_choosers, clients, threshold, colluders)
                    assert floor >= 1 and floor <= max(1, min_choosers)
                    for z in (0.3, 1.0, 2.5):
                        settings = DDPSettings(1.0, z, 64)
                        variance = client_variance(settings, floor)
                        for k in range(floor, clients + 1):
                            assert k * variance >= Fraction(z) ** 2 * 64**2
                        assert zcdp_rho(64, variance, floor, 100) >= 64**2 / (2 * floor * variance)


def test_production_noise_sums_have_the_claimed_variance():
    """Seeded: 5 clients x 400,000 coordinates of noise at S = 50 (table and rejection samplers); the row sums' variance is
    5 S within 6 standard errors (false alarm < 1e-8)."""
    for sampler in (discrete_gaussian_table, discrete_gaussian):  # production, and the exact rejection sampler
        noise = sampler(50, 5 * 400_000, DeterministicRandomness("noise-sum")).reshape(5, -1).sum(axis=0)
        expected = 5 * 50  # N_Z(0, S) has variance within 1e-100 of S at S = 50
        standard_error = expected * math.sqrt(2 / noise.size)
        assert abs(noise.astype(float).var() - expected) < 6 * standard_error
