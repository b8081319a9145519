"""Small deterministic parties for the attack tests: fixed index sets and scripted training results,
so an attack's success is checked against values known exactly."""

from __future__ import annotations

import numpy as np

from fedprivacy.submodel.interfaces import TrainingResult

WIDTH = 2
DENSE = 3


def real_set(party: int, universe: int = 500, size: int = 10) -> np.ndarray:
    """Party ``party``'s real index set: ``size`` distinct ids, a few shared with its neighbours."""
    rng = np.random.default_rng(1000 + party)  # public test data, not a secret
    own = rng.choice(universe - 20, size - 2, replace=False) + 20
    shared = np.array([party % 7, (party + 1) % 7], dtype=np.int64)  # ids 0..6: held by several parties
    return np.unique(np.concatenate([own, shared])).astype(np.uint64)


def scripted_delta(party: int, row: int) -> np.ndarray:
    return np.array([0.001 * party + 0.0001 * (row % 97), -0.002 * party], dtype=np.float64)


def scripted_count(party: int, row: int) -> int:
    return 1 + (party * 7 + row) % 5


class FixedSetClient:
    """A client with a fixed real set whose training result per row is a known function of (party, row)."""

    def __init__(self, party: int, ids: np.ndarray | None = None) -> None:
        self.client_id = party
        self._ids = real_set(party) if ids is None else np.asarray(ids, dtype=np.uint64)

    def index_set(self) -> np.ndarray:
        return self._ids.copy()

    def train(self, row_ids: np.ndarray, rows: np.ndarray, dense: np.ndarray) -> TrainingResult:
        ids = np.asarray(row_ids, dtype=np.uint64)
        deltas = np.array([scripted_delta(self.client_id, int(r)) for r in ids]).reshape(-1, WIDTH)
        counts = np.array([scripted_count(self.client_id, int(r)) for r in ids], dtype=np.int64)
        return TrainingResult(ids, deltas, counts, np.full(DENSE, 0.01), 5)


class TinyModel:
    """A model owner with zero rows and zero dense parameters; it remembers what it was told to apply."""

    row_width = WIDTH
    dense_size = DENSE

    def __init__(self) -> None:
        self.applied: dict[int, np.ndarray] = {}

    def rows(self, ids: np.ndarray) -> np.ndarray:
        return np.zeros((len(ids), WIDTH))

    def dense(self) -> np.ndarray:
        return np.zeros(DENSE)

    def apply_row_updates(self, ids: np.ndarray, mean_deltas: np.ndarray) -> None:
        for row, delta in zip(np.asarray(ids).tolist(), mean_deltas):
            self.applied[int(row)] = np.asarray(delta)

    def apply_dense_update(self, mean_delta: np.ndarray) -> None:
        self.applied[-1] = np.asarray(mean_delta)
