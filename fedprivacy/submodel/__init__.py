"""Secure federated submodel learning.

``secure`` composes one round (PSU -> randomized response -> per-row secure aggregation) from
:mod:`fedprivacy.psu`, :mod:`fedprivacy.ldp` / :mod:`fedprivacy.accounting` and
:class:`fedprivacy.secagg.RowPlan`, driving any model through the interfaces of
:mod:`fedprivacy.submodel.interfaces`; ``workload``, ``model`` and ``reference`` are the synthetic
data and the reference numpy model behind them; ``plaintext`` is the baseline the round must match.
"""

from .model import DenseHead, LocalUpdate, auc, init_model, local_update, predict
from .plaintext import apply_row_sums, plaintext_round
from .workload import ClientData, Workload, synthetic_workload

__all__ = [
    "ClientData",
    "DenseHead",
    "LocalUpdate",
    "Workload",
    "apply_row_sums",
    "auc",
    "init_model",
    "local_update",
    "plaintext_round",
    "predict",
    "synthetic_workload",
]
