"""Plaintext submodel federated learning (FedSubAvg), the baseline the secure round must match.

Each round every participating client trains on the rows its data touches; the server applies, for
every row j with a positive count, W_j += (sum of count-weighted deltas) / (sum of counts), and moves
the dense head by the sample-weighted mean of the dense deltas. No privacy at all: the server sees
every client's real rows and updates. The secure round computes the same sums through PSU,
randomized response and per-row secure aggregation.
"""

from __future__ import annotations

import numpy as np

from .model import DenseHead, local_update
from .workload import ClientData

__all__ = ["apply_row_sums", "plaintext_round"]


def apply_row_sums(table: dict[int, np.ndarray], rows: np.ndarray, weighted_sums: np.ndarray, counts: np.ndarray) -> int:
    """W_j += weighted_sums_j / counts_j for every row with a positive count; returns how many moved."""
    moved = 0
    for row, total, count in zip(rows, weighted_sums, counts):
        if count > 0:
            table[int(row)] = table[int(row)] + total / count
            moved += 1
    return moved


def plaintext_round(clients: list[ClientData], table: dict[int, np.ndarray], head: DenseHead) -> DenseHead:
    """One FedSubAvg round in place on ``table``; returns the new dense head."""
    updates = [local_update(client, table, head) for client in clients]
    rows = np.unique(np.concatenate([u.rows for u in updates])) if updates else np.zeros(0, np.uint64)
    width = head.weights.shape[0] + 1
    sums = np.zeros((rows.shape[0], width))
    counts = np.zeros(rows.shape[0])
    for update in updates:
        where = np.searchsorted(rows, update.rows)
        sums[where] += update.row_counts[:, None] * update.row_deltas
        counts[where] += update.row_counts
    apply_row_sums(table, rows, sums, counts)
    samples = sum(u.samples for u in updates)
    if samples == 0:
        return head
    dense = sum(u.samples * u.dense_delta for u in updates) / samples
    return DenseHead.from_flat(head.flat() + dense)
