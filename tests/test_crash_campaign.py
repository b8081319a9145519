"""The crash campaign (tests/crash_campaign.py) with a few seeded kills, and two runs on one --out."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from fedprivacy.adapters.audit import audit_directory
from fedprivacy.adapters.lock import LOCK_FILE

from .crash_campaign import _command, _env, check_state, run_campaign

KILLS = int(os.environ.get("FEDPRIVACY_CRASH_KILLS", "10"))


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
