"""The simulation's model evaluation: test AUC and log-loss over every client's test split."""

from __future__ import annotations

import numpy as np


def _evaluate(clients, table, head) -> dict[str, float]:
    """Test AUC and mean log-loss over every client's test split (the model outputs click probabilities)."""
    from ..submodel.demo import auc, predict

    scores, labels = zip(*[predict(c, table, head) for c in clients])
    scores, clicked = np.concatenate(scores), np.concatenate(labels) > 0.5
    p = np.clip(scores, 1e-12, 1.0 - 1e-12)
    loss = float(-np.mean(np.where(clicked, np.log(p), np.log1p(-p)))) if p.size else float("nan")
    return {"test_auc": auc(scores, clicked), "test_loss": loss}
