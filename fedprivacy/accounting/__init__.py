"""Privacy accounting: immutable events, hash-chained per-client ledgers, composition, budget filter."""

from .accountant import ClientBudget, replay
from .events import PrivacyEvent, UpdateEvent
from .ledger import Ledger, LedgerIntegrityError, parse_ledger
from .participation import Participation, participate, refusal_event

__all__ = [
    "ClientBudget",
    "Ledger",
    "LedgerIntegrityError",
    "Participation",
    "PrivacyEvent",
    "UpdateEvent",
    "parse_ledger",
    "participate",
    "refusal_event",
    "replay",
]
