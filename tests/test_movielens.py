"""The MovieLens-100K loader on a small file in the same layout (the real data set is never committed)."""

from __future__ import annotations

import numpy as np
import pytest

from fedprivacy.adapters.movielens import load_movielens_100k
from fedprivacy.errors import DecodeError, InvalidParameters


def test_loads_users_as_clients(tmp_path):
    rng = np.random.default_rng(0)
    lines = [f"{u}\t{i}\t{rng.integers(1, 6)}\t{874965758 + i}" for u in range(1, 6) for i in rng.choice(np.arange(1, 80), 20, replace=False)]
    (tmp_path / "u.data").write_text("\n".join(lines) + "\n")
    workload = load_movielens_100k(tmp_path, seed=1)
    assert len(workload.clients) == 5 and workload.universe <= 80
    client = workload.clients[0]
    assert client.train_items.shape[0] == 16 and client.test_items.shape[0] == 4
    assert set(np.unique(client.train_labels)) <= {0.0, 1.0}


def test_missing_or_malformed_data_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidParameters, match="not found"):
        load_movielens_100k(tmp_path)
    (tmp_path / "u.data").write_text("1\t2\t9\t3\n")
    with pytest.raises(DecodeError):
        load_movielens_100k(tmp_path)
    (tmp_path / "u.data").write_text("not\ta\tnumber\n")
    with pytest.raises(DecodeError):
        load_movielens_100k(tmp_path)
