"""Unbiased frequency estimation from randomized sets, with variances.

In one round, N clients with the same parameters report; c_j of them put index j in S''. With t_j
the true number of holders, E[c_j] = t_j p5 + (N - t_j) p6, so

    t_hat_j = (c_j - N p6) / (p5 - p6)              (unbiased)
    Var[t_hat_j] = [t p5 (1 - p5) + (N - t) p6 (1 - p6)] / (p5 - p6)^2

Averaging over many rounds only removes the instantaneous noise (the memos are fixed): the floor
is [t p1 (1 - p1) + (N - t) p2 (1 - p2)] / (p1 - p2)^2 (``lifetime_variance_floor``).
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidParameters
from .params import RRParameters

__all__ = ["estimate_holders", "estimate_variance", "lifetime_variance_floor"]


def _gap(params: RRParameters) -> float:
    gap = float(params.p5 - params.p6)
    if gap <= 0:
        raise InvalidParameters("p5 = p6: the reports carry no information about membership")
    return gap


def estimate_holders(counts: object, reporters: int, params: RRParameters) -> np.ndarray:
    """Unbiased estimates of the number of holders of each index from its report counts."""
    counts = np.asarray(counts, dtype=np.float64)
    if reporters < 0 or np.any(counts < 0) or np.any(counts > reporters):
        raise InvalidParameters("counts must lie in [0, reporters]")
    return (counts - reporters * float(params.p6)) / _gap(params)


def estimate_variance(holders: object, reporters: int, params: RRParameters) -> np.ndarray:
    """Variance of :func:`estimate_holders` for the given true holder counts (one round)."""
    t = np.asarray(holders, dtype=np.float64)
    p5, p6 = float(params.p5), float(params.p6)
    return (t * p5 * (1 - p5) + (reporters - t) * p6 * (1 - p6)) / _gap(params) ** 2


def lifetime_variance_floor(holders: object, reporters: int, params: RRParameters) -> np.ndarray:
    """The variance no number of rounds can beat (the permanent answers' own noise)."""
    t = np.asarray(holders, dtype=np.float64)
    p1, p2 = float(params.p1), float(params.p2)
    if p1 == p2:
        raise InvalidParameters("p1 = p2: the memo carries no information about membership")
    return (t * p1 * (1 - p1) + (reporters - t) * p2 * (1 - p2)) / (p1 - p2) ** 2
