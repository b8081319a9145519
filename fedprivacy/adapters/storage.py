"""Client-side persistence: the permanent-response memo and the privacy ledger, on disk.

Layout of a client's directory: ``memo.bin`` (the format of :mod:`fedprivacy.ldp.memo`),
``ledger.jsonl`` (the format of :mod:`fedprivacy.accounting.ledger`) and ``ledger.head`` (the head
record of :mod:`fedprivacy.accounting.recovery`). ``protocols/ldp/storage.md`` states the formats,
the write order and the recovery rules.

* The memo and the head record are written atomically: a temporary file in the same directory,
  flushed and fsynced, then ``os.replace`` and an fsync of the directory. A reader sees the old or
  the new file, never half. A new ledger (its header line) is written the same way.
* Ledger lines are appended, flushed and fsynced one at a time, each followed by the head record.
* :meth:`ClientStore.open_ledger` checks the three files against each other and rolls a crash's
  leftovers forward (:func:`~fedprivacy.accounting.recovery.reconcile`); damage raises
  :class:`~fedprivacy.accounting.recovery.StateDamaged` naming the file, the line and what to do.
  A missing ledger next to a memo or head record is damage, never a fresh ledger; a missing memo is
  only accepted for a client whose ledger records no release.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..accounting.ledger import Ledger, LedgerIntegrityError, parse_ledger
from ..accounting.recovery import HeadRecord, Reconciled, StateDamaged, reconcile
from ..errors import InvalidParameters
from ..ldp.memo import PermanentMemo
from ..ldp.params import RRParameters

__all__ = [
    "ClientStore", "read_ledger_file", "write_atomic", "read_client_files", "remove_interrupted_writes",
    "MEMO_FILE", "LEDGER_FILE", "HEAD_FILE",
]

MEMO_FILE = "memo.bin"
LEDGER_FILE = "ledger.jsonl"
HEAD_FILE = "ledger.head"
_MAX_FILE = 1 << 34  # refuse to read anything larger into memory


def _read_optional(path: Path) -> bytes | None:
    """The file's bytes, or None if it does not exist; an unreadable path is :class:`StateDamaged`."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > _MAX_FILE:
                raise StateDamaged(str(path), 0, f"the file is too large ({size} bytes)", "check the directory")
            return handle.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise StateDamaged(str(path), 0, "a directory where a file was expected", f"move {path} away") from None
    except OSError as exc:
        raise StateDamaged(str(path), 0, f"cannot be read ({exc.strerror or exc})",
                           "check the file's permissions and the disk") from None


def read_client_files(directory: Path, client_id: str) -> Reconciled:
    """Reconcile the ledger, head record and memo in ``directory`` without writing anything."""
    return reconcile(
        client_id,
        _read_optional(directory / LEDGER_FILE),
        _read_optional(directory / HEAD_FILE),
        _read_optional(directory / MEMO_FILE),
        ledger_name=str(directory / LEDGER_FILE),
        head_name=str(directory / HEAD_FILE),
        memo_name=str(directory / MEMO_FILE),
    )


def write_atomic(path: Path, data: bytes) -> None:
    directory = path.parent
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    directory_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)


def remove_interrupted_writes(root: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files that atomic writes killed before their rename left under ``root``
    (``.memo.bin.*``, ``.ledger.head.*``, ``.ledger.jsonl.*``); returns them. The files they were
    replacing are intact. Call it only while holding the directory's lock (no writer is running)."""
    prefixes = tuple(f".{name}." for name in (MEMO_FILE, HEAD_FILE, LEDGER_FILE))
    removed = []
    for current, _, files in os.walk(root):
        for name in files:
            if name.startswith(prefixes):
                path = Path(current) / name
                try:
                    path.unlink()
                    removed.append(path)
                except OSError:
                    pass
    return removed


def read_ledger_file(path: Path) -> Ledger:
    """Parse and verify a ledger file; any damage (encoding included) is a LedgerIntegrityError."""
    lines = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                lines.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise LedgerIntegrityError(str(path), number, "not UTF-8") from None
    return parse_ledger(lines, str(path))


class ClientStore:
    """One client's memo and ledger in ``directory`` (created if needed)."""

    def __init__(self, directory: str | os.PathLike[str], client_id: str) -> None:
        self.directory = Path(directory)
        self.client_id = client_id
        self.directory.mkdir(parents=True, exist_ok=True)
        self.recovered: list[str] = []  # what open_ledger rolled forward or noticed (for the user)

    @property
    def memo_path(self) -> Path:
        return self.directory / MEMO_FILE

    @property
    def ledger_path(self) -> Path:
        return self.directory / LEDGER_FILE

    @property
    def head_path(self) -> Path:
        return self.directory / HEAD_FILE

    def open_ledger(self, epsilon_cap: float) -> Ledger:
        """The verified ledger, created with ``epsilon_cap`` if this client has no state yet.

        The three files are checked against each other first and a crash's leftovers rolled forward
        (:attr:`recovered` lists what was done); damage raises ``StateDamaged`` or
        ``LedgerIntegrityError`` naming the file and line.
        """
        state = read_client_files(self.directory, self.client_id)
        self.recovered = [repair.note for repair in state.repairs if repair.note] + state.warnings
        for repair in state.repairs:
            if repair.kind == "truncate_ledger":
                with open(self.ledger_path, "r+b") as handle:
                    handle.truncate(repair.size)
                    handle.flush()
                    os.fsync(handle.fileno())
            elif repair.kind == "append_ledger":
                self._append(repair.data)
            elif repair.kind == "write_head":
                write_atomic(self.head_path, repair.data)
            elif repair.kind == "write_memo":
                write_atomic(self.memo_path, repair.data)
            else:  # pragma: no cover -- reconcile only returns the kinds above
                raise AssertionError(repair.kind)
        if state.ledger is not None:
            return state.ledger
        ledger, header = Ledger.create(self.client_id, epsilon_cap)
        write_atomic(self.ledger_path, (header + "\n").encode())
        write_atomic(self.head_path, HeadRecord(self.client_id, 0, ledger.head).encode())
        return ledger

    def _append(self, data: bytes) -> None:
        with open(self.ledger_path, "ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def append_ledger_line(self, line: str) -> None:
        """Append one line made by :class:`Ledger` (durable), then move the head record to it."""
        import json

        entry = json.loads(line)
        self._append((line + "\n").encode())
        write_atomic(self.head_path, HeadRecord(self.client_id, entry["seq"], entry["hash"]).encode())

    def load_memo(self, params: RRParameters, ledger: Ledger) -> PermanentMemo:
        data = self.memo_path.read_bytes() if self.memo_path.exists() else None
        return PermanentMemo.stored_or_empty(data, self.client_id, params, released=ledger.has_releases,
                                             where=str(self.memo_path))

    def save_memo(self, memo: PermanentMemo) -> None:
        if memo.client_id != self.client_id:
            raise InvalidParameters("memo of another client")
        write_atomic(self.memo_path, memo.encode())
