"""Per-row aggregation replays byte for byte: digests of seeded rounds' full transcripts.

The digests were recorded from the straightforward implementation (one keystream call and one
gather/scatter per pair, plans as per-peer row arrays). Any change to how masks are computed,
batched or stored must leave every message of these rounds -- and the result -- unchanged.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from fedprivacy.hazmat.field import Modulus, dtype_of, modulus_value
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.secagg import DropoutSchedule, SecAggStep, RowPlan, SecAggConfig, run_secagg_round

from .helpers import PROTOCOL_POLICY

SESSION = b"fedprivacy row transcript tests1"


def _round(modulus: Modulus, width: int, seed: int) -> str:
    rng = np.random.default_rng(seed)  # public test data
    parties = tuple(range(1, 15))
    union = np.sort(rng.choice(1 << 40, 300, replace=False)).astype(np.uint64)
    density = rng.uniform(0.05, 0.9, len(parties))
    chosen = {p: union[rng.random(union.shape[0]) < q] for p, q in zip(parties, density)}
    chosen[parties[0]] = union[:0]  # a party that chose nothing
    plan = RowPlan(union, width, chosen)
    config = SecAggConfig(parties, plan.dim, modulus, len(parties) - 1, 9, SESSION)
    high = min(modulus_value(modulus), 1 << 63)
    inputs = {p: rng.integers(0, high, r.shape[0] * width, dtype=np.uint64).astype(dtype_of(modulus)) for p, r in chosen.items()}
    drops = DropoutSchedule({2: SecAggStep.INPUT, 5: SecAggStep.INPUT, 7: SecAggStep.UNMASK, 11: SecAggStep.SHARE})
    digest = hashlib.sha256()

    def observe(sender: int, recipient: int, data: bytes) -> None:
        digest.update(b"%d>%d:%d:" % (sender, recipient, len(data)) + data)

    report = run_secagg_round(config, inputs, drops, row_plan=plan, observer=observe,
                              random_source=lambda p: DeterministicRandomness(f"rows {seed} {p}"), policy=PROTOCOL_POLICY)
    assert report.aborted is None and not report.client_errors
    digest.update(np.ascontiguousarray(report.result).astype("<u8").tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize(
    ("modulus", "width", "seed", "expected"),
    [
        (Modulus.U64, 19, 1, "8f30efacd726d82d10b93104bf970fc40201f65c2a791af8f8e7fd4b8d2faebf"),
        (Modulus.U32, 5, 2, "d1f7947b8b724291fb5fae54fce56a70795aab4cc58d0d470bdf3d66b746780f"),
        (Modulus.P61, 3, 3, "411910cf9826003adb14a6e313595cf4b9cf3df8b86459b62ed3d29cf5e029d8"),
        (Modulus.P61, 19, 4, "07a26d76ae4e8308348954be57d1b316aa9edf41b6dd34b899e17a146bbaa63a"),
    ],
)
def test_seeded_row_rounds_replay_byte_for_byte(modulus, width, seed, expected):
    assert _round(modulus, width, seed) == expected
