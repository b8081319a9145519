"""Audit a directory of client state (what ``fedprivacy audit`` runs): every problem, with file and line.

For each client directory found under the root (one holding ``ledger.jsonl``, ``ledger.head`` or
``memo.bin``) the three files are checked against each other exactly as a client loading them would
(:func:`fedprivacy.accounting.recovery.reconcile`), without writing anything; the ledger is then
replayed by the accountant (:func:`fedprivacy.accounting.replay`). Any other ``*.jsonl`` file is
audited as a bare ledger (its tail cannot be checked: there is no memo or head record beside it).

Findings are ``error`` (the spend may be wrong or a client is blocked: the audit fails) or
``warning`` (something a run will repair or that needs a look, with the spend still right):

* errors: a broken hash chain or unreadable line; a cut tail (the ledger shorter than its head
  record or its memo's anchor); a missing or empty ledger beside a memo or head record; an empty
  ledger; a junk, foreign, reset or rolled-back memo; an unreadable file or directory; two different
  ledgers of one client; an accountant disagreement; a client over its cap; no ledger at all;
* warnings: what the next run rolls forward after a crash (the repair is described; the spend
  reported already includes a release it will append); a header-only ledger (no round recorded);
  a ledger reached twice (a link; counted once); leftover temporary files; a lock file.

Only reads; never follows the audit's findings by changing a file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

from ..accounting import LedgerIntegrityError, replay
from ..accounting.ledger import Ledger
from ..accounting.recovery import HeadRecord, StateDamaged
from ..accounting.report import client_report, population_report
from ..errors import DecodeError, FedPrivacyError
from ..ldp.memo import PermanentMemo
from .lock import LOCK_FILE
from .storage import HEAD_FILE, LEDGER_FILE, MEMO_FILE, read_client_files, read_ledger_file

__all__ = ["Finding", "AuditResult", "audit_directory"]

_STATE_FILES = (LEDGER_FILE, HEAD_FILE, MEMO_FILE)


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" | "warning"
    file: str
    line: int | None  # 1-based; None when the whole file (or directory) is concerned
    problem: str
    action: str = ""


@dataclass
class AuditResult:
    root: str
    clients: list[dict] = field(default_factory=list)  # accounting.report.client_report, one per client
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict:
        """The population report of :func:`fedprivacy.accounting.report.population_report` (every
        error also in ``broken_ledgers``), plus ``findings`` and ``ok``. Strict JSON: no NaN."""
        broken = [LedgerIntegrityError(f.file, f.line or 0, f.problem) for f in self.errors]
        report = population_report(self.clients, broken)
        report["root"] = self.root
        report["findings"] = [asdict(f) for f in self.findings]
        report["ok"] = self.ok
        return report


def _hint(directory: Path) -> str:
    """The client id the files claim (the ledger header's, else the head record's or the memo's,
    else the directory's name)."""
    try:
        with open(directory / LEDGER_FILE, "rb") as handle:
            first = json.loads(handle.readline(1 << 16).decode("utf-8"))
        if isinstance(first, dict) and isinstance(first.get("client_id"), str):
            return first["client_id"]
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        pass
    for name, decode in ((HEAD_FILE, HeadRecord.decode), (MEMO_FILE, PermanentMemo.decode)):
        try:
            return decode((directory / name).read_bytes()).client_id
        except (OSError, DecodeError):
            pass
    return directory.name


def _lock_finding(path: Path) -> Finding:
    try:
        import fcntl

        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            held = False
        except BlockingIOError:
            held = True
        finally:
            os.close(fd)
    except (OSError, ImportError):
        return Finding("warning", str(path), None, "a lock file that cannot be checked", "make sure no run is using the directory")
    if held:
        return Finding("warning", str(path), None, "a run is using this directory now: its state may change while audited",
                       "audit again when it has finished")
    return Finding("warning", str(path), None, "a lock file left by a run that was killed",
                   "the next run takes it over; its state is checked (see the other findings)")


def audit_directory(root: str | os.PathLike[str]) -> AuditResult:
    """Audit every client's state under ``root``; read-only."""
    base = Path(root)
    result = AuditResult(str(base))
    if not base.is_dir():
        what = "does not exist" if not base.exists() else "is not a directory"
        result.findings.append(Finding("error", str(base), None, f"the audit root {what}", "give the folder a run wrote (its --out)"))
        return result
    audit = _Audit(result)
    client_dirs, bare_ledgers = audit.walk(base)
    for directory in client_dirs:
        audit.count(directory, directory / LEDGER_FILE, partial(_client_state, directory))
    for path in bare_ledgers:
        audit.count(path, path, partial(_bare_ledger, path))
    if not client_dirs and not bare_ledgers and not result.errors:
        result.findings.append(Finding("error", str(base), None, "no ledger found", "give the folder a run wrote (its --out)"))
    return result


_Read = Callable[[], "tuple[Ledger | None, list[Finding]]"]


class _Audit:
    """One audit's walk and tally: the directories and ledger files seen (each counted once) and
    the ledger of each client id, adding findings and client reports to ``result`` as it goes."""

    def __init__(self, result: AuditResult) -> None:
        self.result = result
        self.seen_dirs: set[tuple[int, int]] = set()
        self.seen_files: dict[tuple[int, int], Path] = {}
        self.by_client: dict[str, tuple[str, str]] = {}  # client id -> (source, head hash)

    def _add(self, finding: Finding) -> None:
        self.result.findings.append(finding)

    def _unreadable(self, error: OSError) -> None:
        self._add(Finding("error", str(error.filename), None, f"cannot be read ({error.strerror or error})",
                          "check its permissions; a ledger inside would not be counted"))

    def walk(self, base: Path) -> tuple[list[Path], list[Path]]:
        """The client directories and the bare ledgers under ``base`` (temporary and lock files, links
        and unreadable directories become findings)."""
        client_dirs: list[Path] = []
        bare_ledgers: list[Path] = []
        for current, dirs, files in os.walk(base, onerror=self._unreadable, followlinks=True):
            here = Path(current)
            if not self._first_visit(here):
                dirs[:] = []
                continue
            dirs.sort()
            names = set(files)
            for name in sorted(names):
                self._check_stray_file(here / name)
            if names & set(_STATE_FILES):
                client_dirs.append(here)
            bare_ledgers += [here / n for n in sorted(names) if n.endswith(".jsonl") and n != LEDGER_FILE]
        return client_dirs, bare_ledgers

    def _first_visit(self, here: Path) -> bool:
        """Whether the directory is seen for the first time (unreadable, or reached again by a link: no)."""
        try:
            st = os.stat(here)
        except OSError as exc:
            self._unreadable(exc)
            return False
        if (st.st_dev, st.st_ino) in self.seen_dirs:
            self._add(Finding("warning", str(here), None, "a directory reached twice (a link); audited once"))
            return False
        self.seen_dirs.add((st.st_dev, st.st_ino))
        return True

    def _check_stray_file(self, path: Path) -> None:
        if path.name.startswith((f".{MEMO_FILE}.", f".{HEAD_FILE}.", f".{LEDGER_FILE}.")):
            self._add(Finding("warning", str(path), None, "a temporary file left by an interrupted write",
                              "safe to delete (the file it was replacing is intact)"))
        elif path.name == LOCK_FILE:
            self._add(_lock_finding(path))

    def count(self, source: Path, ledger_file: Path, read: _Read) -> None:
        """Read one ledger (``read``) and count it, once per file and once per client."""
        if self._seen_file(ledger_file):
            return
        try:
            ledger, findings = read()
        except LedgerIntegrityError as exc:
            self._add(Finding("error", exc.source, exc.line, exc.reason,
                              f"restore {exc.source} from a backup; the chain is broken at this line"))
            return
        except StateDamaged as exc:
            self._add(Finding("error", exc.file, exc.line or None, exc.problem, exc.action))
            return
        except (FedPrivacyError, OSError) as exc:
            self._add(Finding("error", str(source), None, f"cannot be audited: {exc}"))
            return
        self.result.findings.extend(findings)
        if ledger is not None and self._first_ledger_of_client(ledger, ledger_file):
            self._report(ledger, ledger_file)

    def _seen_file(self, ledger_file: Path) -> bool:
        """Whether the file was counted already (a link to it: a warning)."""
        try:
            st = os.stat(ledger_file)
        except OSError:
            return False
        key = (st.st_dev, st.st_ino)
        if key in self.seen_files:
            self._add(Finding("warning", str(ledger_file), None, f"the same file as {self.seen_files[key]} (a link): counted once"))
            return True
        self.seen_files[key] = ledger_file
        return False

    def _first_ledger_of_client(self, ledger: Ledger, ledger_file: Path) -> bool:
        """Whether this is the client's first ledger; a copy is a warning, a different one an error."""
        previous = self.by_client.get(ledger.client_id)
        if previous is None:
            self.by_client[ledger.client_id] = (str(ledger_file), ledger.head)
            return True
        if previous[1] == ledger.head:
            self._add(Finding("warning", str(ledger_file), None,
                              f"a copy of {previous[0]} (client {ledger.client_id!r}): counted once"))
        else:
            self._add(Finding("error", str(ledger_file), None,
                              f"a second, different ledger of client {ledger.client_id!r} (the other is "
                              f"{previous[0]})", "keep only the client's real ledger"))
        return False

    def _report(self, ledger: Ledger, ledger_file: Path) -> None:
        """The client's report, replayed by the accountant, with its disagreement, cap and empty findings."""
        report = client_report(str(ledger_file), replay(ledger))
        last = len(ledger.hashes)
        if report["disagreement"]:
            self._add(Finding("error", str(ledger_file), last, "the accountant and its cross-check disagree",
                              "report this as a bug, with the ledger"))
        if report["spent"] == "inf" or (report["cap"] != "inf" and report["spent"] > report["cap"]):
            self._add(Finding("error", str(ledger_file), last, f"spent {report['spent']}, over the cap {report['cap']}",
                              "this client must not take part again"))
        if not ledger.events:
            self._add(Finding("warning", str(ledger_file), 1, "header only: no round recorded",
                              "nothing to do if the client never took part"))
        self.result.clients.append(report)


def _client_state(directory: Path) -> tuple[Ledger | None, list[Finding]]:
    """A client directory's ledger after the repairs a run would make, and those repairs as findings."""
    state = read_client_files(directory, _hint(directory))
    findings = [Finding("warning", r.file or str(directory), r.line or None, r.note.split(": ", 1)[-1],
                        "the next run repairs this") for r in state.repairs]
    findings += [Finding("warning", str(directory / LEDGER_FILE), None, w) for w in state.warnings]
    if state.ledger is None:
        findings.append(Finding("error", str(directory / LEDGER_FILE), None,
                                "empty ledger" if (directory / LEDGER_FILE).exists() else "no ledger",
                                "delete the directory if this client never took part; otherwise restore the ledger"))
    return state.ledger, findings


def _bare_ledger(path: Path) -> tuple[Ledger | None, list[Finding]]:
    return read_ledger_file(path), [
        Finding("warning", str(path), None, "a ledger outside a client directory: its tail cannot be checked "
                "(no head record or memo beside it)")]


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if value is None:
        return "never"
    return str(value)


def _table(titles: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(t), *(len(r[i]) for r in rows)) if rows else len(t) for i, t in enumerate(titles)]
    lines = ["  ".join(t.ljust(w) for t, w in zip(titles, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return lines


def render_text(result: AuditResult) -> str:
    """The audit as text: a table of the clients' spend, then every finding (errors first) with its
    file:line, the problem and what to do."""
    out: list[str] = []
    if result.clients:
        rows = [[c["client_id"], _cell(c["spent"]), _cell(c["cap"]), _cell(c["remaining"]), str(c["releases"]),
                 str(c["refusals"]), _cell(c["rounds_until_exhaustion"]), c["source"]] for c in result.clients]
        headers = ["client", "spent", "cap", "remaining", "releases", "refusals", "rounds left", "ledger"]
        if any(c.get("update_releases") for c in result.clients):  # distributed DP for the updates (protocols/ddp)
            headers[2:2] = ["update eps", "at delta"]
            for row, c in zip(rows, result.clients):
                released = bool(c.get("update_releases"))
                row[2:2] = [_cell(c["update_epsilon"]) if released else "-",
                            f"{c['update_delta']:g}" if released and c.get("update_delta") is not None else "-"]
        out += _table(headers, rows)
        spent = result.to_json()["spent"]
        out.append(f"{len(result.clients)} clients; spent min {_cell(spent.get('min'))}, median {_cell(spent.get('p50'))}, "
                   f"max {_cell(spent.get('max'))} (per-index epsilon, add/remove one index)")
    if result.findings:  # one block per finding: the table's columns would be too wide to read
        out.append("")
        for f in sorted(result.findings, key=lambda f: (f.severity != "error", f.file, f.line or 0)):
            out.append(f"{f.severity.upper():<7} {f.file}{f':{f.line}' if f.line else ''}")
            out.append(f"{'':<7} {f.problem}")
            if f.action:
                out.append(f"{'':<7} what to do: {f.action}")
    errors, warnings = len(result.errors), len(result.findings) - len(result.errors)
    out.append("")
    out.append(f"audit {'FAILED' if errors else 'passed'}: {errors} error(s), {warnings} warning(s) under {result.root}")
    return "\n".join(out)
