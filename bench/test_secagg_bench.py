"""pytest-benchmark suite for secure aggregation (run with `make bench`; not part of `make test`).

Each benchmark reports the median; compare ours with `limit` (the raw keystream floor measured in
the same process), not with absolute times from another machine.
"""

from __future__ import annotations

import numpy as np
import pytest

from fedprivacy.hazmat.field import Modulus
from fedprivacy.hazmat.prg import MaskExpander
from fedprivacy.hazmat import shamir
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy_bench.secagg import masking_limit_seconds
from fedprivacy.secagg import DropoutSchedule, SecAggStep, SecAggConfig, run_secagg_round


@pytest.mark.parametrize("modulus", list(Modulus))
def test_mask_expansion_100k(benchmark, modulus):
    expander = MaskExpander(modulus)
    vector = np.zeros(100_000, dtype=np.uint32 if modulus is Modulus.U32 else np.uint64)
    benchmark(expander.apply, vector, b"k" * 16)


def test_masking_limit_21_masks(benchmark):
    benchmark(masking_limit_seconds, 100_000, 21, Modulus.U32, 1)


def test_shamir_share_10_limbs_500_holders_t350(benchmark):
    secrets = np.arange(10, dtype=np.uint64)
    rand = DeterministicRandomness("bench")
    benchmark(shamir.share, secrets, list(range(1, 501)), 350, rand)


def test_round_n100_d100k_safe_k_drop10_after_input(benchmark):
    # k = 20 with t <= 10 is refused under the default (semi-malicious) bound; the smallest safe k is the default.
    config = SecAggConfig.create(range(1, 101), 100_000, Modulus.U32, dropout_fraction=0.1)
    inputs = {p: np.full(100_000, p, dtype=np.uint32) for p in config.party_ids}
    schedule = DropoutSchedule({p: SecAggStep.UNMASK for p in range(1, 11)})
    report = benchmark.pedantic(run_secagg_round, (config, inputs, schedule), rounds=3, iterations=1)
    assert report.result is not None
