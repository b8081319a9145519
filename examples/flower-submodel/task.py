"""The example's model and data: fedprivacy's reference click model on its seeded synthetic workload."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from fedprivacy.submodel.demo import Workload, auc, init_model, predict, synthetic_workload
from fedprivacy.submodel.reference import ReferenceModel


@lru_cache(maxsize=4)
def workload(clients: int, universe: int, items_per_user: int, seed: int) -> Workload:
    """The same public workload on every node; node ``i`` keeps only ``clients[i]``."""
    return synthetic_workload(clients=clients, universe=universe, items_per_user=items_per_user, seed=seed)


def new_model(universe: int, dim: int, seed: int) -> ReferenceModel:
    return ReferenceModel(*init_model(np.arange(universe, dtype=np.uint64), dim, seed=seed))


def test_auc(model: ReferenceModel, data: Workload) -> float:
    """Test AUC over every client's held-out examples (a demo shortcut: see README.md)."""
    scores, labels = zip(*[predict(c, model.table, model.head) for c in data.clients])
    return auc(np.concatenate(scores), np.concatenate(labels))
