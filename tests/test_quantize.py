"""Quantizer: unbiased, exact enough, and refuses settings that could wrap."""

from __future__ import annotations

import numpy as np
import pytest

from fedprivacy.errors import InvalidParameters
from fedprivacy.hazmat.field import Modulus, modulus_value
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.secagg import DropoutSchedule, SecAggStep, Quantizer, run_secagg_round

from .helpers import config, PROTOCOL_POLICY


@pytest.mark.parametrize("modulus", list(Modulus))
def test_weighted_mean_through_secure_aggregation(modulus):
    cfg = config(range(1, 7), dim=33, modulus=modulus, threshold=3)
    quantizer = Quantizer(modulus, clip=1.0, num_clients=6, max_weight=10.0)
    rng = np.random.default_rng(1)
    values = {p: rng.uniform(-1.5, 1.5, 32) for p in cfg.party_ids}
    weights = {p: float(p) for p in cfg.party_ids}
    inputs = {p: quantizer.encode(values[p], weights[p]) for p in cfg.party_ids}
    report = run_secagg_round(cfg, inputs, DropoutSchedule({4: SecAggStep.INPUT}), policy=PROTOCOL_POLICY)
    counted = sorted(report.input_ids)
    expected = sum(weights[p] * np.clip(values[p], -1, 1) for p in counted) / sum(weights[p] for p in counted)
    step = 1 / quantizer.scale
    assert np.max(np.abs(quantizer.mean(report.result) - expected)) <= len(counted) * step + 1e-12


def test_stochastic_rounding_is_unbiased():
    quantizer = Quantizer(Modulus.U32, clip=1.0, num_clients=1, scale=4.0)
    rand = DeterministicRandomness("rounding")
    value = 0.3  # 1.2 levels: rounds to 1 w.p. 0.8 and to 2 w.p. 0.2
    draws = np.array([quantizer.encode(np.full(1000, value), random_bytes=rand)[:-1].view(np.int32) for _ in range(20)])
    mean_level = draws.mean()
    # 20,000 Bernoulli(0.2) coins: sd of the mean is 0.0028; 6 sd bound, false-failure rate < 1e-8.
    assert abs(mean_level - 1.2) < 6 * 0.0028
    assert set(np.unique(draws)) == {1, 2}


def test_overflow_budget_refuses_settings_that_could_wrap():
    with pytest.raises(InvalidParameters, match="overflow"):
        Quantizer(Modulus.U32, clip=1.0, num_clients=1000, scale=2.0**22)
    q = Quantizer(Modulus.U32, clip=1.0, num_clients=1000)
    assert q.levels_bound * 1000 < 2**31
    with pytest.raises(InvalidParameters):
        Quantizer(Modulus.U32, clip=1.0, num_clients=2**31)
    for bad in (dict(clip=0.0), dict(clip=float("inf")), dict(max_weight=-1.0), dict(num_clients=0)):
        args = dict(modulus=Modulus.U32, clip=1.0, num_clients=3) | bad
        with pytest.raises(InvalidParameters):
            Quantizer(**args)


@pytest.mark.parametrize("modulus", list(Modulus))
def test_worst_case_sum_does_not_wrap(modulus):
    n = 50
    quantizer = Quantizer(modulus, clip=2.0, num_clients=n, max_weight=3.0)
    total = sum(int(v) for v in [quantizer.encode(np.array([-5.0]), 3.0)[0]] * n) % modulus_value(modulus)
    decoded, _ = quantizer.decode(np.array([total, 0], dtype=np.uint64 if modulus is not Modulus.U32 else np.uint32))
    assert decoded[0] == pytest.approx(-2.0 * 3.0 * n, rel=1e-6)


def test_bad_values_and_weights():
    q = Quantizer(Modulus.U64, clip=1.0, num_clients=2, max_weight=1.0)
    with pytest.raises(InvalidParameters):
        q.encode(np.array([np.nan]))
    with pytest.raises(InvalidParameters):
        q.encode(np.array([1.0]), weight=2.0)
    with pytest.raises(InvalidParameters):
        q.mean(np.zeros(3, dtype=np.uint64))
