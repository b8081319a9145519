"""MovieLens-100K as a submodel workload (reads the standard ``u.data`` file; nothing is downloaded).

``u.data`` holds tab-separated ``user item rating timestamp`` lines. Each user is a client, items are
the submodel rows (ids are the file's item ids, 1-based, so the universe is max id + 1), and a rating
of 4 or more is a positive example. Each user's ratings are split into train and test with a seeded
permutation. The data set is not part of the project: pass the folder that holds ``u.data``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DecodeError, InvalidParameters
from ..submodel.workload import ClientData, Workload

__all__ = ["load_movielens_100k"]


def load_movielens_100k(data_path: str | Path, test_fraction: float = 0.2, seed: int = 0, max_users: int | None = None) -> Workload:
    path = Path(data_path) / "u.data"
    if not path.is_file():
        raise InvalidParameters(
            f"MovieLens-100K not found: {path} does not exist. Download the data set yourself and pass "
            "the folder holding u.data with --data-path."
        )
    if not 0 < test_fraction < 1:
        raise InvalidParameters("test_fraction must be in (0, 1)")
    try:
        raw = np.loadtxt(path, dtype=np.int64, delimiter="\t", ndmin=2)
    except ValueError as exc:
        raise DecodeError(f"{path} is not in the u.data layout (user, item, rating, timestamp): {exc}") from None
    if raw.shape[1] != 4 or raw.size == 0 or raw[:, :2].min() < 1 or not np.isin(raw[:, 2], [1, 2, 3, 4, 5]).all():
        raise DecodeError(f"{path} is not in the u.data layout (user, item, rating 1-5, timestamp)")
    rng = np.random.default_rng(seed)  # the split is public
    clients = []
    users = np.unique(raw[:, 0])
    if max_users is not None:
        users = users[:max_users]
    for user in users:
        rows = raw[raw[:, 0] == user]
        items = rows[:, 1].astype(np.uint64)
        labels = (rows[:, 2] >= 4).astype(np.float64)
        order = rng.permutation(items.shape[0])
        cut = max(1, round(items.shape[0] * (1 - test_fraction)))
        train, test = order[:cut], order[cut:]
        clients.append(ClientData(int(user), items[train], labels[train], items[test], labels[test]))
    return Workload(int(raw[:, 1].max()) + 1, clients)
