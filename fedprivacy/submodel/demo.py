"""The demo behind ``fedprivacy simulate``, the benches and the tests: not part of the protocol.

A seeded Taobao-like synthetic workload (:mod:`~fedprivacy.submodel.workload`), a reference numpy
click model (:mod:`~fedprivacy.submodel.model`) with its :class:`ReferenceModel` /
:class:`ReferenceTrainer` implementations of the round's interfaces
(:mod:`~fedprivacy.submodel.reference`), and the plaintext FedSubAvg baseline the secure round must
match (:mod:`~fedprivacy.submodel.plaintext`).
"""

from .model import DenseHead, LocalUpdate, auc, init_model, init_rows, local_update, predict
from .plaintext import apply_row_sums, plaintext_round
from .reference import ReferenceModel, ReferenceTrainer
from .workload import ClientData, Workload, synthetic_workload

__all__ = [
    "ClientData",
    "DenseHead",
    "LocalUpdate",
    "ReferenceTrainer",
    "ReferenceModel",
    "Workload",
    "apply_row_sums",
    "auc",
    "init_model",
    "init_rows",
    "local_update",
    "plaintext_round",
    "predict",
    "synthetic_workload",
]
