"""Check for claim secagg/5 (see claim-5-per-row.md)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fedprivacy.hazmat.field import Modulus, dtype_of, modulus_value
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.secagg import DropoutSchedule, SecAggStep, RowPlan, SecAggConfig, run_secagg_round
from fedprivacy.secagg.graph import all_neighbourhoods
from fedprivacy.policy import weakened_policy

from .common import recoverable

# Rows 10..50: chosen by nobody (50), one party (10), two (20), three (30), everyone (40).
CHOSEN = {1: [10, 20, 30, 40], 2: [20, 30, 40], 3: [30, 40], 4: [40]}
UNION = np.array([10, 20, 30, 40, 50], dtype=np.uint64)


@pytest.mark.parametrize("modulus", list(Modulus))
def test_every_dropout_pattern(modulus):
    plan = RowPlan(UNION, 3, {p: np.array(r, dtype=np.uint64) for p, r in CHOSEN.items()})
    config = SecAggConfig((1, 2, 3, 4), plan.dim, modulus, 3, 2, b"proof: secagg per-row masks 0001")
    high = modulus_value(modulus)
    inputs = {
        p: np.array([(p * 1_000_003 + i * 7_919) * 2_654_435_761 % high for i in range(len(r) * 3)], dtype=dtype_of(modulus))
        for p, r in CHOSEN.items()
    }
    graph = all_neighbourhoods(config)
    completed = 0
    for pattern in itertools.product([None, *SecAggStep], repeat=4):
        drops = {p: s for p, s in zip(config.party_ids, pattern) if s is not None}
        report = run_secagg_round(config, inputs, DropoutSchedule(drops), row_plan=plan,
                                  random_source=lambda p: DeterministicRandomness(f"{pattern}{p}"), policy=weakened_policy())
        if not recoverable(config, graph, drops):
            assert report.result is None
            continue
        survivors = {p for p in config.party_ids if drops.get(p) in (None, SecAggStep.UNMASK)}
        expected = []
        for row in UNION:
            total = [0, 0, 0]
            for p in survivors:
                if int(row) in CHOSEN[p]:
                    block = inputs[p].reshape(-1, 3)[CHOSEN[p].index(int(row))]
                    total = [(a + int(b)) % high for a, b in zip(total, block)]
            expected.append(total)
        assert report.result.reshape(-1, 3).astype(object).tolist() == expected, pattern
        completed += 1
    assert completed > 100
