"""The crash campaign (tests/crash_campaign.py) with a few seeded kills, and two runs on one --out."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from fedprivacy.adapters.audit import audit_directory
from fedprivacy.adapters.lock import LOCK_FILE

from .crash_campaign import _command, _env, check_state, run_campaign

KILLS = int(os.environ.get("FEDPRIVACY_CRASH_KILLS", "8"))


def test_killed_runs_recover_with_correct_spend(tmp_path):
    outcomes = run_campaign(KILLS, seed=12, workdir=tmp_path, log=lambda _: None)
    assert outcomes["re-run correct"] == KILLS
    assert sum(v for k, v in outcomes.items() if k.startswith("killed by")) >= 1  # not all finished first


def test_a_second_run_on_the_same_out_refuses(tmp_path):
    out = tmp_path / "out"
    command = _command(out)
    command[command.index("--rounds") + 1] = "30"  # long enough to be running while the second starts
    first = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / LOCK_FILE).exists() or not (out / LOCK_FILE).read_bytes():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        second = subprocess.run(_command(out), env=_env(), capture_output=True, text=True)
        assert second.returncode == 2
        assert f"is in use by another run (process {first.pid} on" in second.stderr
        assert "Traceback" not in second.stderr
        assert first.wait(timeout=120) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert audit_directory(out).ok and not (out / LOCK_FILE).exists()
    assert check_state(out, 0) == []


_KILL_AT_WRITE = """
import os, signal, sys
from fedprivacy.adapters import storage
target, count = int(sys.argv[1]), [0]
real_atomic, real_append = storage.write_atomic, storage.ClientStore._append

def step():
    count[0] += 1
    if count[0] == target:
        os.kill(os.getpid(), signal.SIGKILL)  # right after write number `target`

def write_atomic(path, data):
    real_atomic(path, data)
    step()

def append(store, data):
    real_append(store, data)
    step()

storage.write_atomic, storage.ClientStore._append = write_atomic, append
from fedprivacy.cli import main
status = main(sys.argv[2:])
print(f"writes: {count[0]}", file=sys.stderr)
sys.exit(status)
"""


def test_sigkill_after_every_write_of_a_run(tmp_path, capsys):
    """The process really dies (SIGKILL) after write 1, 2, ... of a small run; each time the audit
    shows no error and a re-run finishes with every client releasing and the spend exact."""
    import json
    import signal
    import sys

    from fedprivacy.cli import main

    args = ["simulate", "--clients", "3", "--items", "15", "--universe", "200", "--dim", "2", "--rounds", "1",
            "--dropout", "0", "--no-plots", "--quiet", "--json"]
    # How many writes a whole run makes (each client: ledger and head record created; per PSU attempt: a
    # line and its head; per release: memo, line, head; the report), counted by a run that is not killed.
    counting = subprocess.run([sys.executable, "-c", _KILL_AT_WRITE, "0", *args, "--out", str(tmp_path / "count")],
                              env=_env(), capture_output=True, text=True)
    assert counting.returncode == 0, counting.stderr
    writes = int(counting.stderr.rsplit("writes: ", 1)[1])
    assert writes >= 3 * 2 + 3 * 3
    killed = 0
    for target in range(1, writes + 2):
        out = tmp_path / f"kill-{target}"
        child = subprocess.run([sys.executable, "-c", _KILL_AT_WRITE, str(target), *args, "--out", str(out)],
                               env=_env(), capture_output=True, text=True)
        if child.returncode == 0:  # the run had fewer writes than `target` (a PSU rerun adds some: its
            # hash keys come from the OS, so the count can differ from the counting run's)
            assert int(child.stderr.rsplit("writes: ", 1)[1]) < target, (target, child.stderr)
        else:
            assert child.returncode == -signal.SIGKILL, (target, child.stderr)
            killed += 1
        assert audit_directory(out).ok, (target, audit_directory(out).errors)
        capsys.readouterr()
        assert main([*args, "--out", str(out)]) == 0
        report = json.loads(capsys.readouterr().out)
        assert all(r.get("participants", 3) == 3 for r in report["rounds"])
        assert check_state(out, 1, rounds=1) == []
    assert killed >= writes // 2  # the runs really died at their writes
