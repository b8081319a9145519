"""Check for claim psu/3 (see claim-3-small-bounds.md): full tables of small bounds peel.

Positions come from the production hashing (``hash_ids`` under the keys of a real ``PSUParameters``,
one session id per trial); whether a table peels is read off its 2-core, and a first check ties that
to the production encoder and peeler on the same tables.
"""

from __future__ import annotations

import numpy as np
import pytest

from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.psu import PSUParameters, encode_set, peel
from fedprivacy.psu.iblt import hash_ids

from ..audit import clopper_pearson

CLAIMED_RATE = 1e-3  # per attempt, at full load, for every bound below
CLAIMED_MEAN = 2e-4  # the average over the bounds below
ALPHA = 1e-6  # per test; the audit's false-alarm rate is at most (len(BOUNDS) + 1) * ALPHA
TRIALS = {1: 2000, 2: 2000, 3: 2000, 5: 2000, 10: 2000, 20: 2000, 34: 2000, 50: 2000, 100: 2000, 200: 2000,
          300: 2000, 500: 600, 1000: 300}  # bound: tables (fewer for the larger ones, to stay within seconds)
BOUNDS = tuple(TRIALS)


def _params(bound: int, trial: int, **shape: int) -> PSUParameters:
    """The table of a PSU whose bound is capped by a universe of ``bound`` ids (so every id is held)."""
    return PSUParameters(bound, bound, b"proof psu/3 " + trial.to_bytes(8, "little"), **shape)  # type: ignore[arg-type]


def _stuck(tables: list[np.ndarray], cells: int) -> np.ndarray:
    """For each table (positions of shape (k, B)): is its 2-core non-empty? All tables are peeled as
    one disjoint union (cells offset per table); an id leaves once one of its cells holds it alone."""
    count, (k, bound) = len(tables), tables[0].shape
    positions = (np.stack(tables) + (np.arange(count) * cells)[:, None, None]).transpose(0, 2, 1).reshape(-1, k)
    alive = np.ones(count * bound, dtype=bool)
    load = np.bincount(positions.ravel(), minlength=count * cells)
    while True:
        leaving = alive & (load[positions] == 1).any(axis=1)
        if not leaving.any():
            return alive.reshape(count, bound).any(axis=1)
        alive &= ~leaving
        load = np.bincount(positions[alive].ravel(), minlength=count * cells)


def _failures(bound: int, trials: int, **shape: int) -> int:
    ids = np.arange(bound, dtype=np.uint64)
    tables, cells = [], 0
    for trial in range(trials):
        params = _params(bound, trial, **shape)
        tables.append(hash_ids(params, ids)[0])
        cells = params.cells
    return int(_stuck(tables, cells).sum())


@pytest.mark.parametrize("bound", [5, 34, 100])
def test_the_production_peeler_fails_exactly_when_the_two_core_is_non_empty(bound):
    ids = np.arange(bound, dtype=np.uint64)
    outcomes = set()
    for extra in (0, 256):  # without the extra cells both outcomes occur often
        for trial in range(40):
            params = _params(bound, trial, extra_cells=extra)
            sketch = encode_set(params, ids, random_bytes=DeterministicRandomness(f"psu/3/{bound}/{extra}/{trial}"))
            result = peel(params, sketch)
            stuck = bool(_stuck([hash_ids(params, ids)[0]], params.cells)[0])
            assert result.success is not stuck
            if result.success:
                assert result.ids.tolist() == ids.tolist()
            outcomes.add(result.success)
    assert outcomes == {True, False}


def test_full_tables_of_small_bounds_peel():
    """Per bound, a one-sided Clopper-Pearson lower bound (level ALPHA) on the failure rate must not
    exceed CLAIMED_RATE, and over all bounds pooled, CLAIMED_MEAN. A table shape meeting the claim
    fails this check with probability at most (len(BOUNDS) + 1) * ALPHA = 1.4e-5 (the seeds are
    fixed, so a run is reproducible)."""
    counts = {bound: _failures(bound, trials) for bound, trials in TRIALS.items()}
    for bound, failures in counts.items():
        assert clopper_pearson(failures, TRIALS[bound], ALPHA)[0] <= CLAIMED_RATE, (bound, failures, TRIALS[bound])
    pooled = sum(counts.values())
    assert clopper_pearson(pooled, sum(TRIALS.values()), ALPHA)[0] <= CLAIMED_MEAN, counts


def test_the_audit_flags_the_type_1_tables():
    """The same audit against the weakened rule (no extra cells, as config type 1 had): flagged."""
    flagged = []
    for bound in (5, 34, 100):
        failures = _failures(bound, 400, extra_cells=0)
        lower, _ = clopper_pearson(failures, 400, ALPHA)
        flagged.append(lower > CLAIMED_RATE)
    assert all(flagged)
