"""fedprivacy: privacy protocols for federated submodel learning.

Re-exports only. Protocols: :mod:`fedprivacy.secagg` (secure aggregation), :mod:`fedprivacy.psu`
(private set union), :mod:`fedprivacy.ldp` and :mod:`fedprivacy.accounting` (randomized response and
its budgets), :mod:`fedprivacy.submodel` (the secure submodel round); primitives live in
:mod:`fedprivacy.hazmat`; file storage, Flower, Ray and data sets in :mod:`fedprivacy.adapters`.
"""

from .errors import (
    BudgetExceeded,
    DecodeError,
    FedPrivacyError,
    InvalidCiphertext,
    InvalidParameters,
    LocalProtocolError,
    PolicyViolation,
    ProtocolError,
    RemoteProtocolError,
    RoundAborted,
    WorkerFailed,
)
from .hazmat.field import Modulus

__version__ = "0.1.0"

__all__ = [
    "BudgetExceeded",
    "DecodeError",
    "FedPrivacyError",
    "InvalidCiphertext",
    "InvalidParameters",
    "LocalProtocolError",
    "Modulus",
    "PolicyViolation",
    "ProtocolError",
    "RemoteProtocolError",
    "RoundAborted",
    "WorkerFailed",
    "__version__",
]
