"""``fedprivacy bench ldp``: time one client's double randomized response over a large union.

The union and the real set are public synthetic data (numpy.random is fine for them); the coins
come from the library's CSPRNG as in production. Reports medians over repeated rounds, separately
for a client's first round (every index new: permanent and instantaneous coins) and later rounds
over the same questionnaire (instantaneous coins only).
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from fedprivacy.ldp import PermanentMemo, RRParameters, randomize

__all__ = ["run_ldp_bench"]


def run_ldp_bench(union_size: int, real: int, params: RRParameters, repeats: int = 7, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    union = np.unique(rng.integers(0, 1 << 61, union_size, dtype=np.uint64))
    real_ids = union[rng.choice(union.shape[0], size=min(real, union.shape[0]), replace=False)]
    empty = PermanentMemo.empty("bench", params)
    randomize(params, empty, union[:1000], real_ids)  # warm up
    first, later, chosen = [], [], []
    memo = randomize(params, empty, union, real_ids).memo
    for _ in range(repeats):
        started = time.perf_counter()
        result = randomize(params, empty, union, real_ids)
        first.append(time.perf_counter() - started)
        started = time.perf_counter()
        again = randomize(params, memo, union, real_ids)
        later.append(time.perf_counter() - started)
        chosen.append(len(again.chosen_ids))
    real_kept = float(np.isin(real_ids, result.chosen_ids).mean())
    return {
        "union_size": int(union.shape[0]),
        "real": int(real_ids.shape[0]),
        "parameters": params.as_strings(),
        "first_round_seconds_median": statistics.median(first),
        "later_round_seconds_median": statistics.median(later),
        "chosen_median": statistics.median(chosen),
        "expected_chosen": float(real_ids.shape[0] * params.p5 + (union.shape[0] - real_ids.shape[0]) * params.p6),
        "real_kept_fraction": real_kept,
        "epsilon_1": params.epsilon_1,
        "epsilon_inf": params.epsilon_inf,
    }
