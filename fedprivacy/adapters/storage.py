"""Client-side persistence: the permanent-response memo and the privacy ledger, on disk.

Layout of a client's directory: ``memo.bin`` (the format of :mod:`fedprivacy.ldp.memo`) and
``ledger.jsonl`` (the format of :mod:`fedprivacy.accounting.ledger`).

* The memo is written atomically: a temporary file in the same directory, flushed and fsynced, then
  ``os.replace`` and an fsync of the directory. A reader sees the old or the new memo, never half.
* Ledger lines are appended, flushed and fsynced one at a time.
* A missing memo is only accepted for a client whose ledger records no release; otherwise loading
  fails (a silent reset would draw fresh permanent answers and spend the budget again). A damaged or
  foreign memo is an error too.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import DecodeError, InvalidParameters
from ..accounting.ledger import Ledger, LedgerIntegrityError, parse_ledger
from ..ldp.memo import PermanentMemo
from ..ldp.params import RRParameters

__all__ = ["ClientStore", "read_ledger_file", "write_atomic"]

MEMO_FILE = "memo.bin"
LEDGER_FILE = "ledger.jsonl"


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

    @property
    def memo_path(self) -> Path:
        return self.directory / MEMO_FILE

    @property
    def ledger_path(self) -> Path:
        return self.directory / LEDGER_FILE

    def open_ledger(self, epsilon_cap: float) -> Ledger:
        """The verified ledger, created with ``epsilon_cap`` if it does not exist yet."""
        if self.ledger_path.exists():
            ledger = read_ledger_file(self.ledger_path)
            if ledger.client_id != self.client_id:
                raise InvalidParameters(f"{self.ledger_path} belongs to client {ledger.client_id!r}")
            return ledger
        ledger, header = Ledger.create(self.client_id, epsilon_cap)
        self.append_ledger_line(header)
        return ledger

    def append_ledger_line(self, line: str) -> None:
        with open(self.ledger_path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def load_memo(self, params: RRParameters, ledger: Ledger) -> PermanentMemo:
        if not self.memo_path.exists():
            if any(event.kind == "release" for event in ledger.events):
                raise DecodeError(
                    f"{self.memo_path} is missing but the ledger records releases: refusing to draw "
                    "fresh permanent answers (that would spend the budget again); restore the memo"
                )
            return PermanentMemo.empty(self.client_id, params)
        memo = PermanentMemo.decode(self.memo_path.read_bytes())
        memo.check_owner(self.client_id, params)
        return memo

    def save_memo(self, memo: PermanentMemo) -> None:
        if memo.client_id != self.client_id:
            raise InvalidParameters("memo of another client")
        write_atomic(self.memo_path, memo.encode())
