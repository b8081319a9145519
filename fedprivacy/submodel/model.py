"""The reference click model: an item-embedding table plus a small dense head, in plain numpy.

Each item row holds an embedding e_j (``dim`` floats) and a bias a_j. For a user with clicked
training items C, its representation is r = mean of the embeddings of C (computed on the device from
rows it holds; no per-user row ever reaches the server). A candidate item j scores
z = w . (r * e_j) + a_j + b and clicks with probability sigmoid(z). Parameters: the table (one row of
``dim + 1`` floats per item: the submodel rows) and the dense head (w, b).

``local_update`` runs a few epochs of SGD on one client's examples over the rows it holds and returns
row deltas, per-row sample counts and the dense delta -- what the submodel round aggregates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameters
from .workload import ClientData

__all__ = ["DenseHead", "LocalUpdate", "init_model", "init_rows", "predict", "local_update", "auc"]


@dataclass
class DenseHead:
    weights: np.ndarray  # (dim,)
    bias: float

    def flat(self) -> np.ndarray:
        return np.concatenate([self.weights, [self.bias]])

    @classmethod
    def from_flat(cls, flat: np.ndarray) -> DenseHead:
        return cls(np.array(flat[:-1], dtype=np.float64), float(flat[-1]))


@dataclass
class LocalUpdate:
    rows: np.ndarray  # item ids the client trained (sorted)
    row_deltas: np.ndarray  # (len(rows), dim + 1)
    row_counts: np.ndarray  # samples that touched each row
    dense_delta: np.ndarray  # (dim + 1,)
    samples: int


def init_model(universe_rows: np.ndarray, dim: int, seed: int = 0, scale: float = 0.3) -> tuple[dict[int, np.ndarray], DenseHead]:
    """Row table (as a dict row id -> vector, for any id space) and dense head, seeded (public)."""
    values, head = init_rows(len(universe_rows), dim, seed, scale)
    return dict(zip((int(r) for r in universe_rows), values)), head


def init_rows(count: int, dim: int, seed: int = 0, scale: float = 0.3,
              dtype: type = np.float64) -> tuple[np.ndarray, DenseHead]:
    """The rows of :func:`init_model` packed, one per row of a (count, dim + 1) array (the same values
    for the same seed), in ``dtype``: float32 rounds them as a float32 embedding table holds them."""
    if dim < 1:
        raise InvalidParameters("dim must be >= 1")
    rng = np.random.default_rng(seed)
    values: np.ndarray = np.zeros((count, dim + 1), dtype=dtype)
    for start in range(0, count, 1 << 16):  # the stream of count draws of dim normals, a block at a time
        stop = min(count, start + (1 << 16))
        values[start:stop, :dim] = rng.normal(0.0, scale, (stop - start, dim))
    return values, DenseHead(np.full(dim, 1.0), 0.0)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def _context(items: np.ndarray, labels: np.ndarray, table: dict[int, np.ndarray], dim: int) -> np.ndarray:
    clicked = [table[int(c)][:dim] for c in items[labels > 0.5] if int(c) in table]
    return np.mean(clicked, axis=0) if clicked else np.zeros(dim)


def predict(client: ClientData, table: dict[int, np.ndarray], head: DenseHead) -> tuple[np.ndarray, np.ndarray]:
    """(scores, labels) on the client's test examples; rows missing from ``table`` count as zero."""
    dim = head.weights.shape[0]
    r = _context(client.train_items, client.train_labels, table, dim)
    rows = np.array([table.get(int(j), np.zeros(dim + 1)) for j in client.test_items]).reshape(-1, dim + 1)
    scores = _sigmoid(rows[:, :dim] @ (head.weights * r) + rows[:, dim] + head.bias)
    return scores, client.test_labels


def local_update(
    client: ClientData,
    table: dict[int, np.ndarray],
    head: DenseHead,
    learning_rate: float = 5.0,
    steps: int = 10,
) -> LocalUpdate:
    """Full-batch gradient descent on the client's training examples (vectorised), touching only the
    rows present in ``table``; returns row deltas, per-row example counts and the dense delta."""
    dim = head.weights.shape[0]
    keep = np.array([int(i) in table for i in client.train_items], dtype=bool)
    items, labels = client.train_items[keep], client.train_labels[keep]
    rows = np.unique(items)
    if rows.size == 0:
        return LocalUpdate(rows, np.zeros((0, dim + 1)), np.zeros(0, np.int64), np.zeros(dim + 1), 0)
    start = np.array([table[int(r)] for r in rows], dtype=np.float64)
    local = start.copy()
    item_index = np.searchsorted(rows, items)
    clicked_index = item_index[labels > 0.5]
    w, b = head.weights.copy(), float(head.bias)
    n = items.shape[0]
    for _ in range(steps):
        r = local[clicked_index, :dim].mean(axis=0) if clicked_index.size else np.zeros(dim)
        e = local[item_index, :dim]
        g = (_sigmoid(e @ (w * r) + local[item_index, dim] + b) - labels) / n  # d mean loss / d z
        grad_local = np.zeros_like(local)
        np.add.at(grad_local[:, :dim], item_index, g[:, None] * (w * r)[None, :])
        np.add.at(grad_local[:, dim], item_index, g)
        weighted = g @ e
        if clicked_index.size:
            np.add.at(grad_local[:, :dim], clicked_index, (w * weighted / clicked_index.size)[None, :])
        grad_w = r * weighted
        local -= learning_rate * grad_local
        w -= learning_rate * grad_w
        b -= learning_rate * float(g.sum())
    return LocalUpdate(
        rows,
        local - start,
        np.bincount(item_index, minlength=rows.shape[0]).astype(np.int64),
        np.concatenate([w - head.weights, [b - head.bias]]),
        int(n),
    )


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half); nan without both classes."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels) > 0.5
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.shape[0], dtype=np.float64)
    sorted_scores = scores[order]
    start = 0
    while start < scores.shape[0]:  # average ranks of ties
        end = start
        while end + 1 < scores.shape[0] and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))
