"""Privacy accounting: immutable events, hash-chained per-client ledgers, composition, budget filter."""

from .accountant import ClientBudget, replay
from .events import PrivacyEvent, UpdateEvent
from .ledger import Ledger, LedgerIntegrityError, parse_ledger
from .participation import Participation, cap_event, participate, psu_attempt_event, refusal_event

__all__ = [
    "ClientBudget",
    "Ledger",
    "LedgerIntegrityError",
    "Participation",
    "cap_event",
    "psu_attempt_event",
    "PrivacyEvent",
    "UpdateEvent",
    "parse_ledger",
    "participate",
    "refusal_event",
    "replay",
]
