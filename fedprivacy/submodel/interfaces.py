"""The two interfaces a submodel FL system implements to run the secure round (framework-free).

``GlobalModel`` is the model owner: it serves rows by id and the dense parameters, and applies the
averaged updates. ``LocalTrainer`` is one data holder: it names the rows its data touches (its real
index set, which never leaves the device), trains on the rows it is given, and returns per-row
deltas, per-row example counts, a dense delta and its example count. Arrays in, arrays out; no
framework, no I/O. See ``fedprivacy.submodel.reference`` for implementations over the reference
numpy model, and the README for wiring your own training loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["GlobalModel", "LocalTrainer", "TrainingResult"]


@dataclass(frozen=True, eq=False)
class TrainingResult:
    row_ids: np.ndarray  # uint64, a subset of the rows given to train()
    row_deltas: np.ndarray  # (len(row_ids), row_width) float
    row_counts: np.ndarray  # examples that touched each row (>= 0)
    dense_delta: np.ndarray  # (dense_size,) float
    samples: int  # examples trained on (the dense weight)


@runtime_checkable
class GlobalModel(Protocol):
    row_width: int
    dense_size: int

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """The current rows for ``ids`` as an array of shape (len(ids), row_width)."""

    def dense(self) -> np.ndarray:
        """The current dense parameters, shape (dense_size,)."""

    def apply_row_updates(self, ids: np.ndarray, mean_deltas: np.ndarray) -> None:
        """W_j += mean_deltas[i] for j = ids[i] (rows nobody surviving trained are not listed)."""

    def apply_dense_update(self, mean_delta: np.ndarray) -> None:
        """theta += mean_delta (the sample-weighted mean of the clients' dense deltas)."""


@runtime_checkable
class LocalTrainer(Protocol):
    client_id: int  # the device's stable id: names its ledger (client-<id>); the round's party id is given apart

    def index_set(self) -> np.ndarray:
        """The row ids this client's data touches (private: used only on the device)."""

    def train(self, row_ids: np.ndarray, rows: np.ndarray, dense: np.ndarray) -> TrainingResult:
        """Train on the given rows (those it holds among its randomized set) and the dense parameters."""
