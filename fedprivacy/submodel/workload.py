"""A synthetic Taobao-like workload: Zipf item popularity, ~M items per user, learnable click labels.

Seeded and public (``numpy.random`` is fine: nothing here is secret). Items have hidden latent
vectors; each user has a hidden taste vector and interacts with about ``items_per_user`` distinct
items drawn by popularity. Each interaction is a click with probability sigmoid(sharpness * <taste,
item> + item bias), so a model that learns item embeddings from the users' clicked items can predict clicks
(test AUC well above 0.5). Every user's interactions are split into train and test examples; the
user's real index set (the rows its data touches) is the set of items it interacted with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameters

__all__ = ["ClientData", "Workload", "synthetic_workload"]


@dataclass(frozen=True, eq=False)
class ClientData:
    client_id: int
    train_items: np.ndarray  # uint64 item ids
    train_labels: np.ndarray  # float64 in {0, 1}
    test_items: np.ndarray
    test_labels: np.ndarray

    @property
    def index_set(self) -> np.ndarray:
        """The rows this client's data touches (its private set)."""
        return np.unique(np.concatenate([self.train_items, self.test_items]))

    @property
    def samples(self) -> int:
        return int(self.train_items.shape[0])


@dataclass(frozen=True, eq=False)
class Workload:
    universe: int
    clients: list[ClientData]


def synthetic_workload(
    clients: int = 100,
    universe: int = 20_000,
    items_per_user: int = 300,
    latent_dim: int = 8,
    zipf_exponent: float = 1.0,
    sharpness: float = 6.0,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Workload:
    if clients < 1 or universe < 2 or not 1 <= items_per_user <= universe or latent_dim < 1:
        raise InvalidParameters("need clients >= 1, universe >= 2, 1 <= items_per_user <= universe, latent_dim >= 1")
    if not 0 < test_fraction < 1:
        raise InvalidParameters("test_fraction must be in (0, 1)")
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, universe + 1) ** zipf_exponent
    popularity /= popularity.sum()
    item_order = rng.permutation(universe)  # which item id has which popularity rank
    item_latent = rng.normal(0.0, 1.0, (universe, latent_dim)) / np.sqrt(latent_dim)
    item_bias = rng.normal(-0.5, 1.5, universe)  # items differ in base click rate, as in real CTR data
    data = []
    for client in range(1, clients + 1):
        taste = rng.normal(0.0, 1.0, latent_dim)
        ranks = rng.choice(universe, size=items_per_user, replace=False, p=popularity)
        items = item_order[ranks]
        logits = sharpness * item_latent[items] @ taste / np.sqrt(latent_dim) + item_bias[items]
        clicks = rng.random(items_per_user) < 1.0 / (1.0 + np.exp(-logits))
        order = rng.permutation(items_per_user)
        cut = max(1, round(items_per_user * (1 - test_fraction)))
        train, test = order[:cut], order[cut:]
        data.append(
            ClientData(
                client,
                items[train].astype(np.uint64),
                clicks[train].astype(np.float64),
                items[test].astype(np.uint64),
                clicks[test].astype(np.float64),
            )
        )
    return Workload(universe, data)
