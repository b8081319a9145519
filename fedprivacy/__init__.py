"""fedprivacy: privacy protocols for federated submodel learning.

Re-exports only. Start with :mod:`fedprivacy.secagg` (secure aggregation); primitives live in
:mod:`fedprivacy.hazmat`.
"""

from .errors import (
    BudgetExceeded,
    DecodeError,
    FedPrivacyError,
    InvalidCiphertext,
    InvalidParameters,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    RoundAborted,
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
    "ProtocolError",
    "RemoteProtocolError",
    "RoundAborted",
    "__version__",
]
