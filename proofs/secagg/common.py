"""Helpers shared by the secure-aggregation checks (plain arithmetic in Python integers)."""

from __future__ import annotations

import numpy as np

from fedprivacy.hazmat.field import dtype_of, modulus_value
from fedprivacy.secagg import SecAggStep, SecAggConfig

_ORDER = list(SecAggStep)


def inputs_for(config: SecAggConfig) -> dict[int, np.ndarray]:
    high = modulus_value(config.modulus)
    return {
        p: np.array([(p * 7919 + i * 104729) * 2_147_483_647 % high for i in range(config.dim)], dtype=dtype_of(config.modulus))
        for p in config.party_ids
    }


def plain_sum(inputs, parties, modulus) -> list[int]:
    high = modulus_value(modulus)
    dim = len(next(iter(inputs.values())))
    return [sum(int(inputs[p][i]) for p in parties) % high for i in range(dim)]


def alive_at(config: SecAggConfig, drops: dict, stage: SecAggStep) -> set[int]:
    return {p for p in config.party_ids if p not in drops or _ORDER.index(drops[p]) > _ORDER.index(stage)}


def recoverable(config: SecAggConfig, graph: dict, drops: dict) -> bool:
    """The spec's completion rule: t parties at every stage, t holders for every needed secret."""
    u1, u2, u3, u5 = (alive_at(config, drops, s) for s in _ORDER)
    t = config.threshold
    if min(len(u1), len(u2), len(u3), len(u5)) < t:
        return False
    for owner in u2:
        holders = graph[owner] & u1
        if config.full_graph:  # the full graph also gives the owner a share of its own secrets
            holders = holders | {owner}
        if len(holders & u2) < t or len(holders & u3) < t:
            return False
        responders = holders & u5 if owner in u3 else graph[owner] & u5
        if len(responders) < t:
            return False
    return True
