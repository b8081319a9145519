"""The reference click model behind the two adapter interfaces (what the simulation and benches use)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from ..errors import InvalidParameters
from .interfaces import TrainingResult
from .model import DenseHead, local_update
from .workload import ClientData

__all__ = ["ReferenceModel", "ReferenceTrainer", "RowTable"]


class RowTable(Mapping[int, np.ndarray]):
    """A read-only mapping row id -> row over a :class:`ReferenceModel`'s packed rows (its ``table``
    when it was built with :meth:`ReferenceModel.from_arrays`): no per-row Python object exists until
    a row is read. A row read is a read-only view; the server copies its rows before the next update
    writes them, so a row read keeps its values."""

    def __init__(self, server: ReferenceModel) -> None:
        self._server = server

    def __getitem__(self, key: int) -> np.ndarray:
        server = self._server
        try:
            where = server._positions(np.array([key], dtype=np.uint64))
        except (KeyError, OverflowError, ValueError, TypeError):
            raise KeyError(key) from None
        server._shared = True  # a view of the current rows is out: copy them before writing
        return server._values[int(where[0])]

    def __contains__(self, key: object) -> bool:
        try:
            self[int(key)]  # type: ignore[call-overload]
        except (KeyError, TypeError, ValueError, OverflowError):
            return False
        return True

    def __iter__(self) -> Iterator[int]:
        return iter(self._server._ids.tolist())

    def __len__(self) -> int:
        return int(self._server._ids.shape[0])


class ReferenceModel:
    """Rows in a dict (any id space), dense head (w, b).

    The rows are also held packed -- sorted ids and one array, read from ``table`` once, here -- so
    serving or updating m rows is a search and a gather, not m dict lookups. ``table`` is kept equal
    to them: its values are rebound to read-only views of the packed rows (one copy of the data, not
    two), and :meth:`apply_row_updates` rebinds each updated row to a new array, as before: no array
    ever handed out through ``table`` is written in place (the first update copies the packed rows
    once, off the views). Change rows through this object: a row rebound in ``table`` behind its back
    is not served.

    ``row_dtype``: the precision the rows (and the dense head's values) are kept in -- float64, or
    float32 as embedding tables usually are (every update is rounded to it; a float32 model's row
    downloads then travel as 4-byte floats, ``protocols/submodel/spec.md``). :meth:`from_arrays` builds
    the same server from packed rows without any per-row object (``table`` is then a :class:`RowTable`).
    """

    def __init__(self, table: dict[int, np.ndarray], head: DenseHead, *, row_dtype: type = np.float64) -> None:
        self.table: Mapping[int, np.ndarray] = table
        ids = np.fromiter(table.keys(), dtype=np.uint64, count=len(table))
        width = int(next(iter(table.values())).shape[0]) if table else head.weights.shape[0] + 1
        values: np.ndarray = np.asarray(np.stack(list(table.values())) if table else np.zeros((0, width)), dtype=row_dtype)
        self._adopt(ids, values.reshape(len(table), width), head)
        # the caller's per-row arrays are released: each value becomes a read-only view of its packed row
        table.update(zip(self._ids.tolist(), self._values))

    @classmethod
    def from_arrays(cls, ids: np.ndarray, values: np.ndarray, head: DenseHead) -> ReferenceModel:
        """The server over rows ``values[i]`` of ids ``ids[i]`` (float32 or float64: the rows' precision),
        kept without a copy until the first update (``values`` is made read-only)."""
        values = np.asarray(values)
        if values.dtype not in (np.float32, np.float64) or values.ndim != 2:
            raise InvalidParameters("values must be a 2-D float32 or float64 array")
        ids = np.asarray(ids, dtype=np.uint64).reshape(-1)
        if ids.shape[0] != values.shape[0]:
            raise InvalidParameters("one id per row")
        server = cls.__new__(cls)
        server._adopt(ids, values, head)
        server.table = RowTable(server)
        return server

    def _adopt(self, ids: np.ndarray, values: np.ndarray, head: DenseHead) -> None:
        self.head = head
        self.row_width = int(values.shape[1])
        self.dense_size = head.weights.shape[0] + 1
        if ids.shape[0] > 1 and not bool(np.all(ids[1:] > ids[:-1])):
            order = np.argsort(ids, kind="stable")
            ids, values = ids[order], values[order]
            if ids.shape[0] > 1 and not bool(np.all(ids[1:] > ids[:-1])):
                raise InvalidParameters("row ids must be distinct")
        self._ids = ids
        self._values = values
        self._shared = True  # views of ``_values`` are out (``table``, the caller's array): copy before writing
        values.flags.writeable = False
        # ids 0..m-1 (the usual table): a row's position is its id, no search needed
        self._contiguous = bool(self._ids.shape[0] == 0 or int(self._ids[-1]) == self._ids.shape[0] - 1)

    @property
    def row_dtype(self) -> np.dtype:
        return self._values.dtype

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
        return np.take(self._values, self._positions(ids), axis=0)  # a copy, as fancy indexing (about 2x faster)

    def dense(self) -> np.ndarray:
        return self.head.flat()

    def apply_row_updates(self, ids: np.ndarray, mean_deltas: np.ndarray) -> None:
        where = self._positions(ids)
        updated = self._values[where] + np.asarray(mean_deltas, dtype=np.float64).reshape(where.shape[0], self.row_width)
        updated = updated.astype(self._values.dtype, copy=False)  # rounded to the rows' precision
        if self._shared:  # the views handed out (``table``, the caller's) keep the rows as they were
            self._values = self._values.copy()
            self._shared = False
        self._values[where] = updated
        if not isinstance(self.table, RowTable):
            self.table.update(zip(np.asarray(ids, dtype=np.uint64).reshape(-1).tolist(), updated))  # type: ignore[attr-defined]

    def apply_dense_update(self, mean_delta: np.ndarray) -> None:
        flat = (self.head.flat() + mean_delta).astype(self._values.dtype).astype(np.float64)  # the rows' precision
        self.head = DenseHead.from_flat(flat)


class ReferenceTrainer:
    def __init__(self, data: ClientData) -> None:
        self.data = data
        self.client_id = data.client_id

    def index_set(self) -> np.ndarray:
        return np.unique(self.data.train_items)

    def train(self, row_ids: np.ndarray, rows: np.ndarray, dense: np.ndarray) -> TrainingResult:
        table = {int(r): v for r, v in zip(row_ids, rows)}
        update = local_update(self.data, table, DenseHead.from_flat(dense))
        return TrainingResult(update.rows, update.row_deltas, update.row_counts, update.dense_delta, update.samples)
