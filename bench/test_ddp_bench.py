"""pytest-benchmark suite for distributed DP (run with `make bench`): noise, clipping, one client's upload."""

from __future__ import annotations

import numpy as np
import pytest

from fedprivacy.ddp import DDPSettings, NoisePlan, client_variance, privatize
from fedprivacy.hazmat.discrete_gaussian import discrete_gaussian, discrete_gaussian_table, gaussian_table

SETTINGS = DDPSettings.for_epsilon(1.0, 1e-6, 8.0)
LARGE = client_variance(SETTINGS, 1)  # a client that counts on itself alone (floor 1)
RNG = np.random.default_rng(0)  # public synthetic updates
VALUES = RNG.normal(size=(1_545, 18)) * 0.01  # about one bench-round client's upload
WEIGHTS = (RNG.uniform(size=1_545) < 0.2).astype(float)


@pytest.mark.parametrize("variance", [100, LARGE])
def test_table_noise_1e6(benchmark, variance):
    gaussian_table(variance)
    benchmark(discrete_gaussian_table, variance, 1_000_000)


def test_rejection_noise_1e5(benchmark):
    benchmark(discrete_gaussian, 100, 100_000)


def test_privatize_one_bench_round_upload(benchmark):
    gaussian_table(LARGE)
    benchmark(privatize, VALUES, WEIGHTS, 1, 1.0, SETTINGS, NoisePlan(LARGE, LARGE))
