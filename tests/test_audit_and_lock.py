"""``fedprivacy audit`` over damaged state (every problem named with file and line) and the --out lock."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fedprivacy.accounting import participate, refusal_event
from fedprivacy.adapters.audit import audit_directory, render_text
from fedprivacy.adapters.lock import LOCK_FILE, DirectoryLocked, LockError, lock_directory
from fedprivacy.adapters.storage import ClientStore
from fedprivacy.cli import main
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.ldp import PermanentMemo, RRParameters

PARAMS = RRParameters.preset(3)


def _client(root, name, rounds=3, cap=math.inf):
    store = ClientStore(root / name, name)
    ledger = store.open_ledger(cap)
    for r in range(rounds):
        part = participate(ledger, store.load_memo(PARAMS, ledger), PARAMS, np.arange(30, dtype=np.uint64), [1], r,
                           random_bytes=DeterministicRandomness(f"{name}{r}"))
        store.save_memo(part.memo)
        store.append_ledger_line(part.ledger_line)
    return store


def _errors(root):
    result = audit_directory(root)
    return [(f.file, f.line, f.problem) for f in result.errors], result


def test_clean_population_passes_and_counts_each_client(tmp_path, capsys):
    for name in ("a", "b", "c"):
        _client(tmp_path, name)
    errors, result = _errors(tmp_path)
    assert errors == [] and len(result.clients) == 3 and result.ok
    assert main(["audit", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "client" in out.splitlines()[0] and "audit passed: 0 error(s)" in out
    assert main(["audit", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["clients"] == 3 and report["findings"] == []


def _cut(store, lines_kept):
    lines = store.ledger_path.read_bytes().splitlines(keepends=True)
    store.ledger_path.write_bytes(b"".join(lines[:lines_kept]))


DAMAGE = {
    # name: (how, expected file suffix, expected line)
    "cut tail": (lambda s: _cut(s, 2), "a/ledger.jsonl", 2),
    "header only beside a memo": (lambda s: _cut(s, 1), "a/ledger.jsonl", 1),
    "empty ledger": (lambda s: s.ledger_path.write_bytes(b""), "a/ledger.jsonl", None),
    "missing ledger": (lambda s: s.ledger_path.unlink(), "a/ledger.jsonl", None),
    "junk memo": (lambda s: s.memo_path.write_bytes(b"junk"), "a/memo.bin", None),
    "reset memo": (lambda s: s.memo_path.write_bytes(PermanentMemo.empty("a", PARAMS).encode()), "a/memo.bin", None),
    "missing memo": (lambda s: s.memo_path.unlink(), "a/memo.bin", None),
    "junk head": (lambda s: s.head_path.write_bytes(b"{}\n"), "a/ledger.head", None),
    "edited line": (lambda s: s.ledger_path.write_bytes(s.ledger_path.read_bytes().replace(b'"round_index":1', b'"round_index":7')),
                    "a/ledger.jsonl", 3),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_each_kind_of_damage_fails_the_audit_naming_file_and_line(tmp_path, capsys, damage):
    how, suffix, line = DAMAGE[damage]
    _client(tmp_path, "b")
    how(_client(tmp_path, "a"))
    errors, result = _errors(tmp_path)
    assert len(errors) == 1, errors
    file, found_line, _ = errors[0]
    assert file.endswith(suffix) and found_line == line
    assert [c["client_id"] for c in result.clients] == (["b"] if damage != "header only beside a memo" else ["b"])
    assert main(["audit", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert any(row.startswith("ERROR") and suffix in row for row in out.splitlines()) and "audit FAILED" in out
    assert main(["audit", str(tmp_path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["broken_ledgers"][0]["file"].endswith(suffix)


def test_rolled_back_memo_fails_the_audit(tmp_path):
    store = _client(tmp_path, "a", rounds=2)
    old = store.memo_path.read_bytes()
    _client(tmp_path, "a", rounds=1)
    store.memo_path.write_bytes(old)
    errors, _ = _errors(tmp_path)
    assert len(errors) == 1 and errors[0][0].endswith("memo.bin") and "rolled back" in errors[0][2]


def test_crash_leftovers_are_warnings_and_the_spend_already_counts_them(tmp_path):
    store = _client(tmp_path, "a", rounds=3)
    full = audit_directory(tmp_path).clients[0]["spent"]
    _cut(store, 3)  # as if the crash hit after the memo, before the line
    (store.directory / ".memo.bin.tmp123").write_bytes(b"partial")
    result = audit_directory(tmp_path)
    assert result.ok and result.clients[0]["spent"] == full
    problems = {(f.file.rsplit("/", 1)[-1], f.line) for f in result.findings}
    assert ("ledger.jsonl", 4) in problems and (".memo.bin.tmp123", None) in problems


def test_header_only_ledger_of_a_client_that_never_took_part_is_a_warning(tmp_path):
    ClientStore(tmp_path / "new", "new").open_ledger(1.0)
    result = audit_directory(tmp_path)
    assert result.ok and [(f.severity, f.line, f.problem) for f in result.findings] == [
        ("warning", 1, "header only: no round recorded")]


def test_duplicates_are_counted_once_and_reported(tmp_path):
    _client(tmp_path / "run", "a")
    _client(tmp_path / "run", "b")
    os.symlink(tmp_path / "run" / "a", tmp_path / "run" / "link-to-a")
    (tmp_path / "run" / "copy").mkdir()
    (tmp_path / "run" / "copy" / "a.jsonl").write_bytes((tmp_path / "run" / "a" / "ledger.jsonl").read_bytes())
    result = audit_directory(tmp_path / "run")
    assert result.ok and sorted(c["client_id"] for c in result.clients) == ["a", "b"]
    warnings = [f.problem for f in result.findings]
    assert any("counted once" in w or "audited once" in w for w in warnings)
    assert any("a copy of" in w for w in warnings)
    # A different ledger claiming the same client is an error.
    _client(tmp_path / "other", "a", rounds=1)
    (tmp_path / "run" / "copy" / "a.jsonl").write_bytes((tmp_path / "other" / "a" / "ledger.jsonl").read_bytes())
    errors, _ = _errors(tmp_path / "run")
    assert len(errors) == 1 and "second, different ledger of client 'a'" in errors[0][2]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_unreadable_paths_are_errors(tmp_path):
    store = _client(tmp_path, "a")
    store.memo_path.chmod(0)
    errors, _ = _errors(tmp_path)
    assert errors and errors[0][0].endswith("memo.bin") and "cannot be read" in errors[0][2]


def test_unreadable_memo_is_an_error_even_as_root(tmp_path):
    store = _client(tmp_path, "a")
    store.memo_path.unlink()
    store.memo_path.mkdir()  # a directory where the memo should be: unreadable as a file for anyone
    errors, _ = _errors(tmp_path)
    assert len(errors) == 1 and errors[0][0].endswith("memo.bin")


@pytest.mark.parametrize("what", ["empty", "missing", "file"])
def test_nothing_to_audit_is_an_error(tmp_path, capsys, what):
    root = tmp_path / "x"
    if what == "empty":
        root.mkdir()
    if what == "file":
        root.write_text("hi")
    errors, _ = _errors(root)
    assert len(errors) == 1 and errors[0][0] == str(root)
    if what == "empty":  # a directory with nothing in it: a finding (exit 1)
        assert main(["audit", str(root)]) == 1
        assert str(root) in capsys.readouterr().out
    else:  # not a directory at all: a bad argument (exit 2), one line on stderr
        assert main(["audit", str(root)]) == 2
        assert f"{root} is not a directory" in capsys.readouterr().err


def test_over_cap_is_an_error(tmp_path):
    from fedprivacy.accounting.ledger import Ledger

    events = ClientStore(tmp_path / "run" / "a", "a").open_ledger(math.inf).events if _client(tmp_path / "run", "a", 2) else []
    relinked, header = Ledger.create("z", 0.1)  # a ledger whose cap is below what it records (written by hand)
    lines = [header] + [relinked.append(type(e)(**{**e.to_dict(), "client_id": "z"})) for e in events]
    (tmp_path / "run" / "z.jsonl").write_text("\n".join(lines) + "\n")
    errors, _ = _errors(tmp_path / "run")
    assert [(e[0].rsplit("/", 1)[-1], e[1]) for e in errors if "over the cap" in e[2]] == [("z.jsonl", 3)]


def test_render_text_is_a_table(tmp_path):
    _client(tmp_path, "a")
    text = render_text(audit_directory(tmp_path))
    header, rule = text.splitlines()[:2]
    assert header.split()[:4] == ["client", "spent", "cap", "remaining"] and set(rule.replace(" ", "")) == {"-"}


# -- the --out lock ---------------------------------------------------------------------------------


def test_second_lock_refuses_and_release_frees(tmp_path):
    lock = lock_directory(tmp_path / "out")
    assert lock.stale is None and (tmp_path / "out" / LOCK_FILE).exists()
    with pytest.raises(DirectoryLocked, match=f"in use by another run \\(process {os.getpid()} on"):
        lock_directory(tmp_path / "out")
    lock.release()
    assert not (tmp_path / "out" / LOCK_FILE).exists()
    with lock_directory(tmp_path / "out") as again:
        assert again.stale is None


def test_stale_lock_of_a_dead_process_is_taken_over_and_reported(tmp_path):
    out = tmp_path / "out"
    script = textwrap.dedent(f"""
        import os
        from fedprivacy.adapters.lock import lock_directory
        lock_directory({str(out)!r})
        os._exit(0)  # dies holding it, like a SIGKILL: the lock file stays
    """)
    subprocess.run([sys.executable, "-c", script], check=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert (out / LOCK_FILE).exists()
    assert any("killed" in f.problem for f in audit_directory(out).findings)
    lock = lock_directory(out)
    assert lock.stale is not None and "process" in lock.stale.description
    lock.release()


def test_lock_on_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(LockError, match="cannot use"):
        lock_directory(tmp_path / "f")


def test_a_missing_ledger_is_named_whatever_the_directory_is_called(tmp_path):
    store = _client(tmp_path, "node-state-7")  # the client id differs from nothing: rename the folder
    os.rename(store.directory, tmp_path / "renamed")
    (tmp_path / "renamed" / "ledger.jsonl").unlink()
    errors, _ = _errors(tmp_path)
    assert len(errors) == 1 and errors[0][0].endswith("renamed/ledger.jsonl") and "missing" in errors[0][2]


def test_temporary_files_of_a_killed_run_are_removed_when_its_lock_is_taken_over(tmp_path):
    from fedprivacy.adapters.storage import remove_interrupted_writes

    store = _client(tmp_path / "out" / "clients", "a")
    leftover = store.directory / ".memo.bin.x1y2"
    leftover.write_bytes(b"half a memo")
    keep = store.directory / "notes.txt"
    keep.write_text("mine")
    assert remove_interrupted_writes(tmp_path / "out") == [leftover]
    assert not leftover.exists() and keep.exists() and audit_directory(tmp_path / "out").findings == []
