"""The reference click model behind the two adapter interfaces (what the simulation and benches use)."""

from __future__ import annotations

import numpy as np

from ..adapters.interfaces import TrainingResult
from .model import DenseHead, local_update
from .workload import ClientData

__all__ = ["ReferenceServer", "ReferenceClient"]


class ReferenceServer:
    """Rows in a dict (any id space), dense head (w, b)."""

    def __init__(self, table: dict[int, np.ndarray], head: DenseHead) -> None:
        self.table = table
        self.head = head
        self.row_width = int(next(iter(table.values())).shape[0]) if table else head.weights.shape[0] + 1
        self.dense_size = head.weights.shape[0] + 1

    def rows(self, ids: np.ndarray) -> np.ndarray:
        return np.array([self.table[int(i)] for i in ids], dtype=np.float64).reshape(-1, self.row_width)

    def dense(self) -> np.ndarray:
        return self.head.flat()

    def apply_row_updates(self, ids: np.ndarray, mean_deltas: np.ndarray) -> None:
        for row, delta in zip(ids, mean_deltas):
            self.table[int(row)] = self.table[int(row)] + delta

    def apply_dense_update(self, mean_delta: np.ndarray) -> None:
        self.head = DenseHead.from_flat(self.head.flat() + mean_delta)


class ReferenceClient:
    def __init__(self, data: ClientData) -> None:
        self.data = data
        self.client_id = data.client_id

    def index_set(self) -> np.ndarray:
        return np.unique(self.data.train_items)

    def train(self, row_ids: np.ndarray, rows: np.ndarray, dense: np.ndarray) -> TrainingResult:
        table = {int(r): v for r, v in zip(row_ids, rows)}
        update = local_update(self.data, table, DenseHead.from_flat(dense))
        return TrainingResult(update.rows, update.row_deltas, update.row_counts, update.dense_delta, update.samples)
