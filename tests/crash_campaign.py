"""Crash campaign: ``fedprivacy simulate --out`` killed (SIGKILL, SIGINT) at random points, many times.

After every kill the audit must pass (a crash leaves only states the next run repairs; they show as
warnings) or name the damage with file and line; a re-run over the same ``--out`` must then finish,
every client must release in each of its rounds (none silently refused) and each ledger's spend must
be exactly the cost of the reports its memo counts (never less). Seeded: the kill times and signals
come from ``random.Random(seed)``.

In CI (``tests/test_crash_campaign.py``) a few kills; outside CI many::

    PYTHONPATH=. python tests/crash_campaign.py --kills 500 --seed 1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 3
SIMULATE = ["simulate", "--clients", "6", "--items", "20", "--universe", "300", "--dim", "2", "--rounds", str(ROUNDS),
            "--dropout", "0", "--no-plots", "--quiet", "--json"]


def _command(out: Path) -> list[str]:
    return [sys.executable, "-c", "import sys; from fedprivacy.cli import main; sys.exit(main())", *SIMULATE, "--out", str(out)]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def check_state(out: Path, completed_runs: int, rounds: int = ROUNDS) -> list[str]:
    """Problems with the state under ``out`` after a finished run (empty: all good)."""
    from fedprivacy.accounting import replay
    from fedprivacy.adapters.audit import audit_directory
    from fedprivacy.adapters.storage import read_client_files
    from fedprivacy.ldp import epsilon_after_reports

    problems = []
    result = audit_directory(out)
    problems += [f"audit error after a finished run: {f}" for f in result.errors]
    for directory in sorted((out / "clients").iterdir()):
        state = read_client_files(directory, directory.name)
        if state.repairs:
            problems.append(f"{directory}: a finished run left repairs pending: {[r.note for r in state.repairs]}")
        ledger, memo = state.ledger, state.memo
        if ledger is None or memo is None:
            problems.append(f"{directory}: no ledger or memo after a finished run")
            continue
        budget = replay(ledger)
        exact = math.fsum(epsilon_after_reports(params, reports) for params, reports in budget.epochs.values())
        if abs(budget.spent() - exact) > 1e-12 or memo.max_reports < completed_runs * rounds:
            problems.append(f"{directory}: spend {budget.spent()} or report count {memo.max_reports} below "
                            f"{completed_runs} finished runs of {rounds} rounds")
        if budget.refusals:
            problems.append(f"{directory}: {budget.refusals} refusals with no cap")
    return problems


_CATEGORIES = {
    "was not yet on the ledger": "memo one line ahead of its ledger (line appended from the memo)",
    "incomplete last line": "incomplete last ledger line (removed or completed)",
    "it lagged": "head record one line behind",
    "it was missing": "head record missing (crash while creating a client)",
    "temporary file": "temporary file of an interrupted atomic write",
    "killed": "lock file of a killed run",
}


def _category(problem: str) -> str:
    return next((name for key, name in _CATEGORIES.items() if key in problem), problem)


def run_campaign(kills: int, seed: int, workdir: Path, log=print) -> Counter:
    """Kill ``kills`` runs; returns the count of each outcome. Raises AssertionError on a violation."""
    rng = random.Random(seed)
    out = workdir / "out"
    outcomes: Counter = Counter()
    start = time.monotonic()
    first = subprocess.run(_command(out), env=_env(), capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    duration = time.monotonic() - start
    completed = 1
    for kill in range(kills):
        sig = rng.choice([signal.SIGKILL, signal.SIGINT])
        delay = rng.uniform(0.0, duration * 1.1)
        child = subprocess.Popen(_command(out), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        if child.poll() is None:
            child.send_signal(sig)
        _, err = child.communicate()
        code = child.returncode
        if code == 0:
            outcomes["finished before the signal"] += 1
            completed += 1
        else:
            outcomes[f"killed by {signal.Signals(sig).name}"] += 1
            if sig == signal.SIGINT and (out / ".fedprivacy.lock").exists():
                outcomes["  SIGINT left a lock file (interrupted while taking it)"] += 1
            assert "Traceback" not in err or sig == signal.SIGINT, err  # SIGINT's message is the CLI's business
        from fedprivacy.adapters.audit import audit_directory

        audit = audit_directory(out)
        if audit.errors:  # must name the damage precisely; a crash should never cause any
            outcomes["audit named damage"] += 1
            raise AssertionError(f"kill {kill} ({sig.name} after {delay:.3f} s) left damage: {audit.errors}")
        recovered = [f for f in audit.findings if f.severity == "warning" and "header only" not in f.problem]
        outcomes["audit clean" if not recovered else "audit: recoverable leftovers (warnings)"] += 1
        for finding in recovered:
            outcomes[f"  warning: {_category(finding.problem)}"] += 1
        again = subprocess.run(_command(out), env=_env(), capture_output=True, text=True)
        assert again.returncode == 0, f"re-run after kill {kill} failed: {again.stderr}"
        if "no longer running" in again.stderr:
            outcomes["re-run reported a stale lock"] += 1
        if "recovered:" in again.stderr:
            outcomes["re-run rolled state forward"] += 1
        report = json.loads(again.stdout)
        if any(r.get("participants", 6) < 6 for r in report["rounds"]):
            raise AssertionError(f"after kill {kill}: a client sat out: {report['rounds']}")
        completed += 1
        problems = check_state(out, completed)
        assert not problems, problems
        outcomes["re-run correct"] += 1
        if (kill + 1) % 25 == 0:
            log(f"{kill + 1} kills: {dict(outcomes)}")
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as workdir:
        outcomes = run_campaign(args.kills, args.seed, Path(workdir))
    print(json.dumps(dict(outcomes), indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
