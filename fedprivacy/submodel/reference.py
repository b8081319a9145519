"""The reference click model behind the two adapter interfaces (what the simulation and benches use)."""

from __future__ import annotations

import numpy as np

from .interfaces import TrainingResult
from .model import DenseHead, local_update
from .workload import ClientData

__all__ = ["ReferenceServer", "ReferenceClient"]


class ReferenceServer:
    """Rows in a dict (any id space), dense head (w, b).

    The rows are also held packed -- sorted ids and one float64 array, read from ``table`` once, here
    -- so serving or updating m rows is a search and a gather, not m dict lookups. ``table`` is kept
    equal to them: its values are rebound to read-only views of the packed rows (one copy of the
    data, not two), and :meth:`apply_row_updates` rebinds each updated row to a new array, as before:
    no array ever handed out through ``table`` is written in place (the first update copies the packed
    rows once, off the views). Change rows through this object: a row rebound in ``table`` behind its
    back is not served.
    """

    def __init__(self, table: dict[int, np.ndarray], head: DenseHead) -> None:
        self.table = table
        self.head = head
        self.row_width = int(next(iter(table.values())).shape[0]) if table else head.weights.shape[0] + 1
        self.dense_size = head.weights.shape[0] + 1
        ids = np.fromiter(table.keys(), dtype=np.uint64, count=len(table))
        values = np.asarray(np.stack(list(table.values())) if table else np.zeros((0, self.row_width)), dtype=np.float64)
        values = values.reshape(len(table), self.row_width)
        if ids.shape[0] > 1 and not bool(np.all(ids[1:] > ids[:-1])):
            order = np.argsort(ids, kind="stable")
            ids, values = ids[order], values[order]
        self._ids = ids
        self._values = values
        self._shared = True  # ``table`` holds views of ``_values``: copy before the first write
        values.flags.writeable = False
        # the caller's per-row arrays are released: each value becomes a read-only view of its packed row
        table.update(zip(ids.tolist(), values))
        # ids 0..m-1 (the usual table): a row's position is its id, no search needed
        self._contiguous = bool(self._ids.shape[0] == 0 or int(self._ids[-1]) == self._ids.shape[0] - 1)

    def _positions(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.uint64).reshape(-1)
        if self._contiguous:
            if ids.size and int(ids.max()) >= self._ids.shape[0]:
                raise KeyError("rows not in the table")
            return ids.astype(np.intp)
        where = np.searchsorted(self._ids, ids)
        if ids.size and (int(where.max()) >= self._ids.shape[0] or not np.array_equal(self._ids[where], ids)):
            raise KeyError("rows not in the table")
        return where

    def rows(self, ids: np.ndarray) -> np.ndarray:
        return self._values[self._positions(ids)]

    def dense(self) -> np.ndarray:
        return self.head.flat()

    def apply_row_updates(self, ids: np.ndarray, mean_deltas: np.ndarray) -> None:
        where = self._positions(ids)
        updated = self._values[where] + np.asarray(mean_deltas, dtype=np.float64).reshape(where.shape[0], self.row_width)
        if self._shared:  # the views in ``table`` (and any held elsewhere) keep the rows as they were
            self._values = self._values.copy()
            self._shared = False
        self._values[where] = updated
        self.table.update(zip(np.asarray(ids, dtype=np.uint64).reshape(-1).tolist(), updated))  # rows as new arrays

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
