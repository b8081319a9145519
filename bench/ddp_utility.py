#!/usr/bin/env python3
"""The AUC cost of distributed DP for the updates: `fedprivacy simulate` without DDP and at a few
per-round budgets, same workload and seed; a table on stdout, and with --out a JSON file and a plot.

Usage: python bench/ddp_utility.py [--budgets 1 4 16 1000000] [--clients 100 --rounds 8] [--out DIR]
(1000000 stands for "clip and 0/1 weights only": negligible noise.)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

from fedprivacy.cli import main as fedprivacy_main


def run(extra: list[str], args: argparse.Namespace) -> dict:
    out = io.StringIO()
    command = ["simulate", "--quiet", "--json", "--clients", str(args.clients), "--rounds", str(args.rounds),
               "--seed", str(args.seed), *extra]
    with contextlib.redirect_stdout(out):
        code = fedprivacy_main(command)
    if code != 0:
        raise SystemExit(f"simulate {' '.join(command)} exited with {code}")
    return json.loads(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[1.0, 4.0, 16.0, 1e6])
    parser.add_argument("--delta", type=float, default=1e-6)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    runs = {"no DDP": run([], args)}
    for budget in args.budgets:
        runs[f"DDP eps {budget:g}/round"] = run(["--ddp-epsilon", str(budget), "--delta", str(args.delta)], args)
    baseline = runs["no DDP"]["final_test_auc"]
    table = []
    for name, report in runs.items():
        last = report["rounds"][-1]
        table.append({"run": name, "final_test_auc": report["final_test_auc"], "auc_cost": baseline - report["final_test_auc"],
                      "update_epsilon": last.get("update_epsilon_max", 0.0), "index_epsilon": last["epsilon_spent_max"],
                      "noise_multiplier": None if report["ddp"] is None else report["ddp"]["noise_multiplier"],
                      "auc_per_round": [r["test_auc"] for r in report["rounds"]]})
    print(f"{'run':<26} {'final AUC':>10} {'AUC cost':>9} {'update eps':>11} {'index eps':>10}  z")
    for row in table:
        z = "-" if row["noise_multiplier"] is None else f"{row['noise_multiplier']:.4g}"
        print(f"{row['run']:<26} {row['final_test_auc']:>10.4f} {row['auc_cost']:>9.4f} {row['update_epsilon']:>11.4g} "
              f"{row['index_epsilon']:>10.4g}  {z}")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "ddp_utility.json").write_text(json.dumps(table, indent=1) + "\n")
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("no plot: matplotlib is not installed", file=sys.stderr)
            return 0
        figure, axes = plt.subplots(figsize=(6, 4))
        for row in table:
            axes.plot(range(len(row["auc_per_round"])), row["auc_per_round"], marker="o", label=row["run"])
        axes.set_xlabel("round")
        axes.set_ylabel("test AUC")
        axes.set_title(f"distributed DP for the updates, {args.clients} clients (delta {args.delta:g})")
        axes.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(out / "ddp_auc.png", dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
