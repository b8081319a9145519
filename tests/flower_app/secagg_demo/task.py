"""The fixed update and weight of each partition, so the test knows the expected weighted mean."""

from __future__ import annotations

import numpy as np



def shapes(dim: int) -> list[tuple[int, ...]]:
    return [(3,), (dim - 3,)]


def update(partition: int, dim: int) -> list[np.ndarray]:
    """Partition p's parameters after "training": values in [-1, 1] (public test data)."""
    flat = np.sin(np.arange(dim, dtype=np.float64) * (partition + 1) + partition).astype(np.float32)
    return [flat[:3].copy(), flat[3:].copy()]


def weight(partition: int) -> int:
    return 10 + 7 * partition


def weighted_mean(partitions: list[int], dim: int) -> np.ndarray:
    total = sum(weight(p) for p in partitions)
    return sum(weight(p) * np.concatenate(update(p, dim)).astype(np.float64) for p in partitions) / total
