"""Crash consistency of a client's ledger, head record and memo, sans-I/O.

A client's durable state is three files (``protocols/ldp/storage.md`` has the layout and rules):
the hash-chained ledger, the *head record* (the sequence number and hash of the ledger's last line,
replaced atomically after every append) and the permanent-response memo (replaced atomically; from
format 2 on it carries the ledger line it was saved for). A release writes, in this order:

1. the memo, anchored at the release's ledger line and carrying its text;
2. the ledger line (appended, fsynced);
3. the head record.

Every other record (a refusal, a lowered cap) writes 2 and 3. A crash (SIGKILL, power loss) between
any two writes leaves one of a handful of states, each recognised here and rolled forward without
ever lowering the recorded spend:

* the memo is one line ahead of the ledger (crash after 1): the line is appended from the memo;
* the last ledger line is incomplete (crash inside 2, power loss): its write never returned, so
  nothing was sent on the strength of it; it is removed, and completed from the memo when it is the
  line the memo was saved for;
* the head record lags the ledger (crash after 2): it is rewritten.

Everything else is damage and raises :class:`StateDamaged` naming the file, the line and what to do:
a ledger shorter than its head record or its memo's anchor (a cut tail, which would understate the
spend), a missing or empty ledger next to a memo or head record, a junk memo or head record, a memo
rolled back behind the ledger, files of another client.

Format-1 memos (saved *after* the ledger line by earlier versions) are still read. The crash window
of that order -- a release line appended whose memo was never saved -- is recovered too, charged in
full: the memo's report counts are raised to the ledger's (an over-charge of at most one report,
never an under-charge), or, with no memo at all, the client moves to a new memo epoch.

:func:`reconcile` reads bytes and returns what to write (``Repair`` steps, applied in order by the
storage adapter, :mod:`fedprivacy.adapters.storage`); it writes nothing itself, so the same function
serves the audit, which only reports the repairs a run would make.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from ..errors import DecodeError
from ..ldp.memo import PermanentMemo
from .events import PrivacyEvent
from .ledger import Ledger, LedgerIntegrityError, canonical_json, parse_ledger

__all__ = ["StateDamaged", "HeadRecord", "Repair", "Reconciled", "reconcile", "HEAD_FORMAT"]

HEAD_FORMAT = 1
_HEAD_MAX = 4096


class StateDamaged(DecodeError):
    """A client's on-disk state is damaged in a way that cannot be recovered without losing spend.

    ``file`` and ``line`` (1-based; 0 when the whole file is concerned) say where, ``problem`` what,
    ``action`` what the user should do.
    """

    def __init__(self, file: str, line: int, problem: str, action: str) -> None:
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {problem}; {action}")
        self.file = file
        self.line = line
        self.problem = problem
        self.action = action


@dataclass(frozen=True)
class HeadRecord:
    """The sequence number and hash of the last ledger line (line number = seq + 1)."""

    client_id: str
    seq: int
    hash: str

    def encode(self) -> bytes:
        body = {"client_id": self.client_id, "format": HEAD_FORMAT, "hash": self.hash, "seq": self.seq}
        return (canonical_json({**body, "check": _check(body)}) + "\n").encode()

    @classmethod
    def decode(cls, data: bytes) -> HeadRecord:
        """Parse a head record; any damage is a :class:`DecodeError`."""
        try:
            if len(data) > _HEAD_MAX or not data.endswith(b"\n"):
                raise DecodeError("not a head record")
            text = data[:-1].decode("ascii")
            value = json.loads(text)
            if not isinstance(value, dict) or set(value) != {"client_id", "format", "hash", "seq", "check"}:
                raise DecodeError("not a head record")
            check = value.pop("check")
            if value["format"] != HEAD_FORMAT:
                raise DecodeError(f"unsupported head record format {value['format']!r}")
            if check != _check(value) or canonical_json({**value, "check": check}) != text:
                raise DecodeError("head record checksum mismatch")
            seq, digest, client = value["seq"], value["hash"], value["client_id"]
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or not isinstance(client, str):
                raise DecodeError("head record fields have the wrong type")
            if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise DecodeError("head record hash is not 64 hex digits")
            return cls(client, seq, digest)
        except DecodeError:
            raise
        except (ValueError, TypeError, KeyError, RecursionError, UnicodeDecodeError):
            raise DecodeError("not a head record") from None


def _check(body: dict) -> str:
    return hashlib.sha256(b"fedprivacy/v1 ledger-head\x00" + canonical_json(body).encode()).hexdigest()


@dataclass(frozen=True)
class Repair:
    """One write the storage adapter makes: ``kind`` is ``truncate_ledger`` (to ``size`` bytes),
    ``append_ledger`` (``data`` is the line with its newline), ``write_head`` or ``write_memo`` (atomically, ``data`` the file's bytes). ``note`` says why."""

    kind: str
    note: str
    data: bytes = b""
    size: int = 0
    file: str = ""
    line: int = 0  # 1-based; 0: the whole file


@dataclass
class Reconciled:
    """The state after the repairs: ``ledger`` (None: no ledger yet, create one), ``memo`` (None: none
    saved), the ``repairs`` to apply in order, and ``warnings`` that are not damage."""

    ledger: Ledger | None
    memo: PermanentMemo | None
    repairs: list[Repair] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _restore(name: str) -> str:
    return f"restore {name} from a backup (a fresh or shortened file would understate this client's spend)"


def reconcile(
    client_id: str,
    ledger_raw: bytes | None,
    head_raw: bytes | None,
    memo_raw: bytes | None,
    *,
    ledger_name: str = "ledger.jsonl",
    head_name: str = "ledger.head",
    memo_name: str = "memo.bin",
) -> Reconciled:
    """Check one client's files (``None``: the file does not exist) and say how to make them agree.

    Raises :class:`StateDamaged` (or :class:`LedgerIntegrityError` for a broken chain) on damage.
    """
    memo = _decode_memo(client_id, memo_raw, memo_name)
    head = _decode_head(client_id, head_raw, head_name, ledger_name)
    if not ledger_raw:
        return _without_ledger(ledger_raw, memo_raw, head_raw, ledger_name, head_name, memo_name)
    repairs: list[Repair] = []
    warnings: list[str] = []
    lines = _complete_lines(ledger_raw, memo, repairs, ledger_name)
    if not lines:
        if memo is not None or head is not None:
            raise StateDamaged(ledger_name, 1, "the ledger has no complete line", _restore(ledger_name))
        return Reconciled(None, None, [], [f"{ledger_name} held only an incomplete first line; it is created anew"])
    ledger = parse_ledger(lines, ledger_name)
    if ledger.client_id != client_id:
        raise StateDamaged(ledger_name, 1, f"the ledger belongs to client {ledger.client_id!r}, not {client_id!r}",
                           f"put back this client's own {ledger_name}")
    # 1. The memo may be one line ahead (saved, then the crash): roll its line forward.
    if memo is not None and not memo.fresh:
        ledger, lines = _roll_memo_line_forward(memo, ledger, lines, repairs, ledger_name, memo_name)
    # 2. The head record: it may lag (a crash after an append), never lead.
    _check_head(head, memo, ledger, warnings, ledger_name, head_name)
    # 3. The memo against the ledger.
    memo = _check_memo(memo, ledger, lines, head, repairs, ledger_name, memo_name, head_name)
    length = len(ledger.hashes)  # lines; the last has seq length - 1
    if head is None or head.seq != length - 1:
        why = "it was missing (written by an older version, or deleted)" if head is None else \
            f"it lagged at line {head.seq + 1} (a crash after an append)"
        repairs.append(Repair("write_head", f"{head_name}: brought up to line {length}; {why}",
                              HeadRecord(client_id, length - 1, ledger.hashes[-1]).encode(), file=head_name))
    return Reconciled(ledger, memo, repairs, warnings)


def _decode_memo(client_id: str, memo_raw: bytes | None, memo_name: str) -> PermanentMemo | None:
    """The memo (None if there is none); :class:`StateDamaged` if unreadable or another client's."""
    if memo_raw is None:
        return None
    try:
        memo = PermanentMemo.decode(memo_raw)
    except DecodeError as exc:
        raise StateDamaged(memo_name, 0, f"the memo is unreadable ({exc})",
                           f"{_restore(memo_name)}; it holds the client's permanent answers") from None
    if memo.client_id != client_id:
        raise StateDamaged(memo_name, 0, f"the memo belongs to client {memo.client_id!r}, not {client_id!r}",
                           f"put back this client's own {memo_name}")
    return memo


def _decode_head(client_id: str, head_raw: bytes | None, head_name: str, ledger_name: str) -> HeadRecord | None:
    """The head record (None if there is none); :class:`StateDamaged` if unreadable or another client's."""
    if head_raw is None:
        return None
    try:
        head = HeadRecord.decode(head_raw)
    except DecodeError as exc:
        raise StateDamaged(head_name, 0, f"the head record is unreadable ({exc})",
                           f"{_restore(head_name)}, or if you know {ledger_name} is complete delete {head_name}") from None
    if head.client_id != client_id:
        raise StateDamaged(head_name, 0, f"the head record belongs to client {head.client_id!r}",
                           f"put back this client's own {head_name}")
    return head


def _without_ledger(
    ledger_raw: bytes | None, memo_raw: bytes | None, head_raw: bytes | None,
    ledger_name: str, head_name: str, memo_name: str,
) -> Reconciled:
    """A missing or empty ledger: a new client (create one), unless a memo or head record exists."""
    kind = "missing" if ledger_raw is None else "empty"
    others = [name for name, raw in ((memo_name, memo_raw), (head_name, head_raw)) if raw is not None]
    if others:
        raise StateDamaged(ledger_name, 0, f"the ledger is {kind} but {' and '.join(others)} "
                           f"{'exists' if len(others) == 1 else 'exist'}",
                           _restore(ledger_name))
    result = Reconciled(None, None)
    if ledger_raw is not None:
        result.warnings.append(f"{ledger_name} is empty and nothing else was saved (a crash while creating it); "
                               "it is created anew")
    return result


def _complete_lines(ledger_raw: bytes, memo: PermanentMemo | None, repairs: list[Repair], ledger_name: str) -> list[str]:
    """The ledger's complete lines; an incomplete last line adds a ``truncate_ledger`` repair."""
    pieces = ledger_raw.split(b"\n")
    torn = pieces.pop()  # b"" when the file ends with a newline
    complete = len(pieces)
    lines = []
    for number, raw in enumerate(pieces, start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise LedgerIntegrityError(ledger_name, number, "not UTF-8") from None
    if torn:
        # An incomplete last line: its append never returned, so nothing was sent on the strength of
        # it. A release's line is completed from the memo (saved first); any other is dropped.
        pending = memo.ledger_line.encode() if memo is not None else b""
        completes = memo is not None and pending.startswith(torn) and memo.ledger_seq == complete
        repairs.append(Repair(
            "truncate_ledger",
            f"{ledger_name}:{complete + 1}: an incomplete last line (the process stopped while writing it) was "
            + ("completed from the memo" if completes else "removed; the record it began was never completed"),
            size=len(ledger_raw) - len(torn), file=ledger_name, line=complete + 1,
        ))
    return lines


def _roll_memo_line_forward(
    memo: PermanentMemo, ledger: Ledger, lines: list[str], repairs: list[Repair], ledger_name: str, memo_name: str,
) -> tuple[Ledger, list[str]]:
    """The ledger and its lines with the memo's release line appended when the memo is one line ahead
    (an ``append_ledger`` repair); :class:`StateDamaged` when the memo is further ahead (a cut tail)."""
    length = len(ledger.hashes)
    if memo.ledger_seq < length:
        return ledger, lines
    if memo.ledger_seq == length and memo.ledger_line:
        try:
            extended: Ledger | None = parse_ledger(lines + [memo.ledger_line], ledger_name)
        except LedgerIntegrityError:
            extended = None
        if extended is not None and extended.hashes[-1] == memo.ledger_head.hex():
            repairs.append(Repair("append_ledger", f"{ledger_name}:{length + 1}: the release the memo was saved for "
                                  "was not yet on the ledger (a crash between the two writes); it is appended "
                                  "and charged", (memo.ledger_line + "\n").encode(), file=ledger_name, line=length + 1))
            ledger, lines, length = extended, lines + [memo.ledger_line], length + 1
    if memo.ledger_seq >= length:
        raise StateDamaged(
            ledger_name, length, f"the ledger ends at line {length} but {memo_name} was saved after line "
            f"{memo.ledger_seq + 1}: lines were cut off its end", _restore(ledger_name))
    return ledger, lines


def _check_head(
    head: HeadRecord | None, memo: PermanentMemo | None, ledger: Ledger, warnings: list[str],
    ledger_name: str, head_name: str,
) -> None:
    """:class:`StateDamaged` if the head record leads the ledger or names another line; a warning if
    it is missing where a format-2 memo shows one was written."""
    length = len(ledger.hashes)
    if head is not None:
        if head.seq >= length:
            raise StateDamaged(
                ledger_name, length, f"the ledger ends at line {length} but {head_name} records line {head.seq + 1}: "
                "lines were cut off its end", _restore(ledger_name))
        if ledger.hashes[head.seq] != head.hash:
            raise StateDamaged(ledger_name, head.seq + 1, f"line {head.seq + 1} is not the line {head_name} records: "
                               "the ledger was replaced", _restore(ledger_name))
    elif memo is not None and memo.version >= 2 and not memo.fresh:
        warnings.append(f"{head_name} was missing (deleted?); recreated from {ledger_name}: a cut tail after "
                        f"line {memo.ledger_seq + 1} could not have been detected")


def _check_memo(
    memo: PermanentMemo | None, ledger: Ledger, lines: list[str], head: HeadRecord | None,
    repairs: list[Repair], ledger_name: str, memo_name: str, head_name: str,
) -> PermanentMemo | None:
    released = {i: event for i, event in enumerate(ledger.events) if isinstance(event, PrivacyEvent) and event.kind == "release"}
    releases = list(released)  # event i has seq i + 1
    legacy = head is None  # written by a version that kept no head record (memo saved after the line)
    if memo is None or memo.fresh:
        epoch = memo.epoch if memo is not None else 0
        in_epoch = [i for i in releases if released[i].epoch == epoch]
        if not in_epoch:
            return memo
        last = releases[-1]
        if legacy and (memo is None or memo.version == 1) and len(releases) == 1 and last == len(ledger.events) - 1:
            # Format 1's crash window: the first release appended, its memo never saved. Its answers
            # are lost (and were never sent); the next release uses a new epoch, so both are charged.
            event = released[last]
            fresh = PermanentMemo.empty(ledger.client_id, event.params(), epoch=event.epoch + 1)
            repairs.append(Repair("write_memo", f"{memo_name}: the ledger's only release (line {last + 2}) has no "
                                  f"memo (a crash before it was saved); it stays charged and the client moves to memo "
                                  f"epoch {event.epoch + 1}", fresh.encode(), file=memo_name))
            return fresh
        if memo is None:
            raise StateDamaged(memo_name, 0, f"the memo is missing but {ledger_name} records releases",
                               f"{_restore(memo_name)}; drawing fresh permanent answers would spend the budget again")
        raise StateDamaged(memo_name, 0, f"the memo is fresh but {ledger_name} records releases of its epoch "
                           f"{memo.epoch}: it was reset", _restore(memo_name))
    seq = memo.ledger_seq
    if not 0 < seq < len(ledger.hashes) or ledger.hashes[seq] != memo.ledger_head.hex():
        raise StateDamaged(ledger_name, seq + 1, f"line {seq + 1} is not the line {memo_name} was saved after: the "
                           "ledger was replaced or edited", _restore(ledger_name))
    if memo.ledger_line and lines[seq] != memo.ledger_line:
        raise StateDamaged(memo_name, 0, f"the memo's copy of line {seq + 1} differs from {ledger_name}",
                           _restore(memo_name))
    later = [i for i in releases if i >= seq]
    if later:
        orphan = released[later[0]]
        if (legacy and memo.version == 1 and len(later) == 1 and later[0] == len(ledger.events) - 1
                and orphan.epoch == memo.epoch and _key(orphan.params()) == _key(memo.params)):
            # Format 1's crash window: the release appended, its memo never saved (nothing was sent).
            # Charge it in full: raise the memo's counts to the ledger's (at most one report too many).
            raise_by = max(0, orphan.max_reports - memo.max_reports)
            recovered = memo.with_reports(memo.reports + np.uint32(raise_by)) if len(memo) else memo
            recovered = recovered.with_anchor(len(ledger.events), ledger.hashes[-1], lines[-1])
            repairs.append(Repair("write_memo", f"{memo_name}: the release on line {len(lines)} has no saved memo (a "
                                  "crash between the two writes); it stays charged and the memo's report counts are "
                                  f"raised by {raise_by} to match", recovered.encode(), file=memo_name))
            return recovered
        raise StateDamaged(memo_name, 0, f"{ledger_name} records a release on line {later[0] + 2}, after the line "
                           f"{seq + 1} this memo was saved after: the memo was rolled back", _restore(memo_name))
    recorded = max((released[i].max_reports for i in releases
                    if (released[i].epoch, _key(released[i].params())) == (memo.epoch, _key(memo.params))), default=0)
    if memo.max_reports != recorded:
        raise StateDamaged(memo_name, 0, f"the memo's report counts ({memo.max_reports}) disagree with "
                           f"{ledger_name} ({recorded})", _restore(memo_name))
    return memo


def _key(params) -> tuple:
    return params.p1, params.p2, params.p3, params.p4
