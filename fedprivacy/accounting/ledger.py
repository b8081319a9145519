"""The per-client privacy ledger: append-only, hash-chained JSON lines (sans-I/O).

Line 1 is the header ``{"seq": 0, "kind": "header", "client_id", "epsilon_cap", "format": 1,
"library_version", "prev": "00..00", "hash"}``; every later line is ``{"seq": n, "kind": "event",
"event": {...}, "prev": <hash of line n-1>, "hash"}``. ``hash`` is SHA-256 (hex) over the domain tag
"fedprivacy/v1 ledger-entry" and the canonical JSON (sorted keys, no spaces, ASCII) of the line
without its ``hash`` field. Editing, deleting, reordering or inserting a line breaks the chain at that
line; :func:`parse_ledger` reports the file and line number. Cutting lines off the *end* leaves a
valid chain: the client's memo therefore records the ledger position and hash it was saved at
(its anchor), and a ledger that no longer contains the anchor is refused where the memo is loaded.

This module only turns lines into a verified :class:`Ledger` and events into new lines; reading and
appending files is the storage adapter's job.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..encoding import domain_tag
from ..errors import DecodeError, InvalidParameters
from .events import MECHANISM_DDG, PrivacyEvent, UpdateEvent, library_version

__all__ = ["Ledger", "LedgerIntegrityError", "parse_ledger", "canonical_json", "GENESIS"]

GENESIS = "0" * 64
LEDGER_FORMAT = 1
_TAG = domain_tag("ledger-entry")


class LedgerIntegrityError(DecodeError):
    """A ledger line is malformed or breaks the hash chain."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        super().__init__(f"{source}:{line}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _hash(entry: dict) -> str:
    return hashlib.sha256(_TAG + canonical_json(entry).encode()).hexdigest()


def _seal(entry: dict) -> str:
    return canonical_json({**entry, "hash": _hash(entry)})


@dataclass
class Ledger:
    """A verified ledger in memory. Append only through :meth:`append`."""

    client_id: str
    epsilon_cap: float
    events: list[PrivacyEvent | UpdateEvent] = field(default_factory=list)
    head: str = GENESIS
    source: str = "<memory>"
    hashes: list[str] = field(default_factory=list)  # hashes[n] is line n+1's hash (n = seq)

    @property
    def has_releases(self) -> bool:
        """Whether any event is a release (a memo must then exist: its answers were spent)."""
        return any(event.kind == "release" for event in self.events)

    @classmethod
    def create(cls, client_id: str, epsilon_cap: float) -> tuple[Ledger, str]:
        """A new ledger and its header line."""
        if not isinstance(client_id, str) or not client_id:
            raise InvalidParameters("client_id must be a non-empty string")
        if not (isinstance(epsilon_cap, (int, float)) and not isinstance(epsilon_cap, bool) and epsilon_cap >= 0):
            raise InvalidParameters("epsilon_cap must be a number >= 0 (math.inf for no cap)")
        header = {
            "seq": 0, "kind": "header", "client_id": client_id, "format": LEDGER_FORMAT,
            "epsilon_cap": _encode_float(float(epsilon_cap)), "library_version": library_version(), "prev": GENESIS,
        }
        line = _seal(header)
        head = json.loads(line)["hash"]
        return cls(client_id, float(epsilon_cap), [], head, hashes=[head]), line

    def append(self, event: PrivacyEvent | UpdateEvent) -> str:
        """Record ``event``; returns the line to append to the file (the caller persists it)."""
        if event.client_id != self.client_id:
            raise InvalidParameters(f"event for client {event.client_id!r} in the ledger of {self.client_id!r}")
        entry = {"seq": len(self.events) + 1, "kind": "event", "event": _encode_event(event), "prev": self.head}
        line = _seal(entry)
        self.events.append(event)
        self.head = json.loads(line)["hash"]
        self.hashes.append(self.head)
        return line


def _encode_float(value: float) -> float | str:
    return "inf" if math.isinf(value) else value


def _decode_float(value: object) -> float:
    if value == "inf":
        return math.inf
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise DecodeError("not a number")


def _encode_event(event: PrivacyEvent | UpdateEvent) -> dict:
    data = event.to_dict()
    if isinstance(event, UpdateEvent):
        return data
    data["epsilon_report"] = _encode_float(event.epsilon_report)
    data["epsilon_inf"] = _encode_float(event.epsilon_inf)
    return data


def parse_ledger(lines: Iterable[str], source: str = "<ledger>") -> Ledger:
    """Verify and load a ledger; :class:`LedgerIntegrityError` names the first bad line (1-based)."""
    ledger: Ledger | None = None
    expected_prev = GENESIS
    for number, raw in enumerate(lines, start=1):
        text = raw.rstrip("\n") if isinstance(raw, str) else ""
        try:
            entry = json.loads(text)
            if not isinstance(entry, dict) or not isinstance(entry.get("hash"), str):
                raise LedgerIntegrityError(source, number, "not a ledger entry")
            claimed = entry.pop("hash")
            intact = _hash(entry) == claimed and canonical_json({**entry, "hash": claimed}) == text
        except LedgerIntegrityError:
            raise
        except (ValueError, TypeError, RecursionError):
            raise LedgerIntegrityError(source, number, "not valid canonical JSON") from None
        if not intact:
            raise LedgerIntegrityError(source, number, "hash mismatch: the line was edited")
        if entry.get("prev") != expected_prev or entry.get("seq") != number - 1:
            raise LedgerIntegrityError(source, number, "chain broken: a line was removed, inserted or reordered")
        expected_prev = claimed
        try:
            if number == 1:
                if entry.get("kind") != "header" or entry.get("format") != LEDGER_FORMAT:
                    raise DecodeError("the first line must be a format-1 header")
                if not isinstance(entry.get("client_id"), str):
                    raise DecodeError("header without a client id")
                ledger = Ledger(entry["client_id"], _decode_float(entry["epsilon_cap"]), [], claimed, source, [claimed])
            else:
                if entry.get("kind") != "event":
                    raise DecodeError("expected an event line")
                if not isinstance(entry.get("event"), dict):
                    raise DecodeError("event line without an event object")
                data = dict(entry["event"])
                event: PrivacyEvent | UpdateEvent
                if data.get("mechanism") == MECHANISM_DDG:
                    event = UpdateEvent.from_dict(data)
                else:
                    data["epsilon_report"] = _decode_float(data.get("epsilon_report"))
                    data["epsilon_inf"] = _decode_float(data.get("epsilon_inf"))
                    event = PrivacyEvent.from_dict(data)
                assert ledger is not None
                if event.client_id != ledger.client_id:
                    raise DecodeError("event of another client")
                ledger.events.append(event)
                ledger.head = claimed
                ledger.hashes.append(claimed)
        except (DecodeError, KeyError, TypeError, ValueError) as exc:
            raise LedgerIntegrityError(source, number, f"invalid entry: {exc}") from None
    if ledger is None:
        raise LedgerIntegrityError(source, 1, "empty ledger (no header)")
    return ledger
