"""Secure federated submodel learning: the workload, the reference model and the plaintext baseline.

The secure round (PSU -> randomized response -> per-row secure aggregation) composes
:mod:`fedprivacy.psu`, :mod:`fedprivacy.ldp` / :mod:`fedprivacy.accounting` and
:class:`fedprivacy.secagg.RowPlan`; this package holds what it trains and the baseline it must match.
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
