"""``fedprivacy simulate``: secure submodel learning on a synthetic or MovieLens workload, in process
(``--mode secagg``: one secure-aggregation round, see :mod:`.secagg_demo`)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InvalidParameters
from .compare import _advance_baselines, _baseline_aucs, _compare_table, _start_baselines
from .evaluate import _evaluate
from .rr import _add_rr_arguments, _rr_params_or_default
from .secagg_demo import _simulate_secagg


def _simulate(args: argparse.Namespace) -> int:
    if args.mode == "secagg":
        return _simulate_secagg(args)
    return _simulate_submodel(args)


class _ReportingClient:
    """A submodel client that calls ``on_train()`` after each local training: the progress hook."""

    def __init__(self, inner, on_train) -> None:
        self.inner = inner
        self.client_id = inner.client_id
        self.on_train = on_train

    def index_set(self) -> np.ndarray:
        return self.inner.index_set()

    def train(self, row_ids: np.ndarray, rows: np.ndarray, dense: np.ndarray):
        result = self.inner.train(row_ids, rows, dense)
        self.on_train()
        return result


@dataclass
class _Simulation:
    """Everything one ``simulate`` run holds between its steps."""

    args: argparse.Namespace
    progress: object
    params: object
    workload: object
    states: dict
    server: object
    settings: object
    rng: np.random.Generator
    out_dir: Path | None
    training: dict = field(default_factory=lambda: {"stage": "", "done": 0, "expected": 1})
    baselines: dict | None = None
    rows: list = field(default_factory=list)


def _simulate_submodel(args: argparse.Namespace) -> int:
    from .progress import Progress

    progress = Progress(args.rounds, "simulate", enabled=not args.quiet, width=20, show_count=False, plain_marks=2)
    try:
        return _run_submodel_simulation(args, progress)
    finally:
        progress.close()  # an error message must not land on the progress line


def _run_submodel_simulation(args: argparse.Namespace, progress) -> int:
    sim = _set_up(args, progress)
    _evaluate_initial_model(sim)
    for round_index in range(1, args.rounds + 1):
        _play_round(sim, round_index)
    report = _build_report(sim)
    written, missing_plots = _write_outputs(sim, report)
    progress.close()
    if missing_plots is not None:  # a warning, shown even with --quiet
        print(missing_plots, file=sys.stderr)
    if sim.out_dir is not None:
        progress.log(f"{', '.join(written)} written under {sim.out_dir} (audit: fedprivacy audit {sim.out_dir})")
    _print_report(args, report, sim.rows, sim.baselines)
    return 0


def _load_workload(args: argparse.Namespace):
    from ..submodel import synthetic_workload

    if args.dataset == "movielens-100k":
        from ..adapters.movielens import load_movielens_100k

        if args.data_path is None:
            raise InvalidParameters("--dataset movielens-100k needs --data-path DIR (the folder holding u.data)")
        return load_movielens_100k(args.data_path, seed=args.seed, max_users=args.clients)
    return synthetic_workload(clients=args.clients, universe=args.universe, items_per_user=args.items, seed=args.seed)


def _set_up(args: argparse.Namespace, progress) -> _Simulation:
    """Parameters, workload, output folder, the clients' states and the initial model."""
    from ..submodel import init_model
    from ..submodel.reference import ReferenceClient, ReferenceServer
    from ..submodel.secure import ClientState, RoundSettings

    params = _rr_params_or_default(args)
    progress.log(
        f"fedprivacy simulate: secure submodel learning, {args.clients} clients x {args.items} items over "
        f"{args.universe} ids, d={args.dim}, {args.rounds} rounds, p=({', '.join(params.as_strings().values())}), "
        f"{args.dropout:.0%} dropout per round"
    )
    workload = _load_workload(args)
    out_dir = Path(args.out) if args.out else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    training = {"stage": "", "done": 0, "expected": 1}  # local trainings finished in the round under way

    def trained() -> None:
        training["done"] += 1
        progress.update(stage=training["stage"], sub=(training["done"], training["expected"], "clients"))

    states = {
        c.client_id: ClientState.new(
            _ReportingClient(ReferenceClient(c), trained), params,
            directory=None if out_dir is None else str(out_dir / "clients" / f"client-{c.client_id}"),
        )
        for c in workload.clients
    }
    universe = workload.universe
    server = ReferenceServer(*init_model(np.arange(universe, dtype=np.uint64), args.dim, seed=args.seed))
    largest = args.items if args.dataset == "synthetic" else 1000  # a public cap per client
    # The aggregation threshold must tolerate the scripted drops even for a handful of clients.
    tolerance = min(0.45, max(0.1, args.dropout) + 1.0 / len(workload.clients))
    settings = RoundSettings(universe=universe, dropout_fraction=tolerance, max_set_size=largest)
    rng = np.random.default_rng(args.seed + 1)  # which synthetic clients drop: public simulation choice
    return _Simulation(args, progress, params, workload, states, server, settings, rng, out_dir, training)


def _evaluate_initial_model(sim: _Simulation) -> None:
    sim.progress.update(stage="evaluating the initial model")
    sim.rows.append({"round": 0, **_evaluate(sim.workload.clients, sim.server.table, sim.server.head)})
    sim.baselines = _start_baselines(sim.args, sim.workload, sim.workload.universe) if sim.args.compare else None
    if sim.baselines is not None:
        sim.rows[0].update(_baseline_aucs(sim.baselines, sim.workload))


def _scripted_drops(sim: _Simulation):
    """Which clients drop this round (half before the set union, half before the upload)."""
    from ..secagg import DropStage
    from ..submodel.secure import RoundDrops

    count = int(round(sim.args.dropout * len(sim.states)))
    dropped = [int(p) for p in sim.rng.choice(sorted(sim.states), size=count, replace=False)]
    half = len(dropped) // 2
    drops = RoundDrops(psu={p: DropStage.INPUT for p in dropped[:half]}, upload={p: DropStage.INPUT for p in dropped[half:]})
    return drops, half


def _play_round(sim: _Simulation, round_index: int) -> None:
    from ..submodel.secure import secure_round

    args, progress = sim.args, sim.progress
    stage = f"round {round_index}/{args.rounds}"
    progress.update(round_index - 1, stage=f"{stage}: set union, randomized response")
    drops, half = _scripted_drops(sim)
    # PSU drops do not train.
    sim.training.update(stage=f"{stage}: training, upload", done=0, expected=len(sim.states) - half)
    outcome = secure_round(sim.states, sim.server, sim.settings, round_index, drops)
    progress.update(stage=f"{stage}: evaluating")
    row = _round_row(sim, round_index, outcome)
    sim.rows.append(row)
    progress.log(f"{stage}: auc {row['test_auc']:.4f}, loss {row['test_loss']:.4f}, union {row['union_size']}, "
                 f"eps spent {row['epsilon_spent_max']:.3f}, {row['protocol_seconds']:.2f} s")
    if sim.baselines is not None:
        progress.update(stage=f"{stage}: baselines (plaintext, FedAvg + secagg)")
        _advance_baselines(sim.baselines, sim.workload, sim.workload.universe, sim.settings)
        row.update(_baseline_aucs(sim.baselines, sim.workload))


def _round_row(sim: _Simulation, round_index: int, outcome) -> dict:
    from ..accounting import replay

    spent = np.array([replay(state.ledger).spent() for state in sim.states.values()])
    return {
        "round": round_index,
        **_evaluate(sim.workload.clients, sim.server.table, sim.server.head),
        "union_size": outcome.union_size,
        "participants": outcome.participants,
        "randomized_set_mean": outcome.chosen_mean,
        "thin_rows": outcome.thin_rows,
        "upload_bytes_per_client": outcome.upload_bytes_median,
        "download_bytes_per_client": outcome.download_bytes_median,
        "protocol_seconds": outcome.psu_seconds + outcome.ldp_seconds + outcome.aggregation_seconds,
        "server_seconds": outcome.server_seconds,
        "epsilon_spent_max": outcome.epsilon_spent_max,
        "epsilon_spent_median": float(np.median(spent)),
        "epsilon_spent_min": float(spent.min()),
    }


def _build_report(sim: _Simulation) -> dict:
    args, params = sim.args, sim.params
    report = {
        "mode": "secure-submodel",
        "dataset": args.dataset,
        "clients": len(sim.workload.clients),
        "items_per_client": args.items if args.dataset == "synthetic" else None,
        "universe": sim.workload.universe,
        "dim": args.dim,
        "parameters": params.as_strings(),
        "epsilon_1": params.epsilon_1,
        "epsilon_inf": params.epsilon_inf,
        "rounds": sim.rows,
        "final_test_auc": sim.rows[-1]["test_auc"],
    }
    if sim.baselines is not None:
        report["comparison"] = _compare_table(report, sim.rows, sim.baselines)
    return report


def _write_outputs(sim: _Simulation, report: dict) -> tuple[list[str], str | None]:
    """report.json and the plots under ``--out`` (the ledgers and memos are written as the rounds go)."""
    out_dir, args = sim.out_dir, sim.args
    if out_dir is None:
        return [], None
    sim.progress.update(args.rounds, stage="writing the report" + ("" if args.no_plots else " and plots"))
    (out_dir / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    written = ["report", "per-client ledgers/memos"]
    if args.no_plots:
        return written, None
    from .plots import PlotsUnavailable, write_plots

    try:
        written += [path.name for path in write_plots(report, out_dir)]
    except PlotsUnavailable as exc:
        return written, f"fedprivacy: no auc.png or epsilon.png: {exc}"
    return written, None


def _print_report(args: argparse.Namespace, report: dict, rows: list[dict], baselines: dict | None) -> None:
    if args.json:
        print(json.dumps(report, sort_keys=True))
        return
    if baselines is not None:
        print("\ncomparison after the last round (bytes per client per round):")
        for method in report["comparison"]:
            print(f"  {method['method']:<40} AUC {method['test_auc']:.4f}  up {method['upload_bytes_per_client']:>12.0f}  "
                  f"down {method['download_bytes_per_client']:>12.0f}  {method['privacy']}")
        print()
    header = ["round", "test_auc", "test_loss", "union_size", "randomized_set_mean", "upload_bytes_per_client",
              "download_bytes_per_client", "protocol_seconds", "epsilon_spent_max"]
    titles = ["round", "test AUC", "test loss", "union", "mean |S''|", "up B/client", "down B/client", "protocol s",
              "eps spent"]
    print("  ".join(f"{h:>13}" for h in titles))
    for row in rows:
        print("  ".join(f"{row[h]:>13.4g}" if isinstance(row.get(h), float) else f"{row.get(h, ''):>13}" for h in header))


def register(commands) -> None:
    simulate = commands.add_parser("simulate", help="secure submodel learning on a synthetic workload, in process")
    simulate.add_argument("--mode", choices=["submodel", "secagg"], default="submodel")
    simulate.add_argument("--clients", type=int, default=100)
    simulate.add_argument("--items", type=int, default=301, help="items per client")
    simulate.add_argument("--universe", type=int, default=143_534)
    simulate.add_argument("--dim", type=int, default=18)
    simulate.add_argument("--rounds", type=int, default=8)
    simulate.add_argument("--dropout", type=float, default=0.1)
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument("--dataset", choices=["synthetic", "movielens-100k"], default="synthetic")
    simulate.add_argument("--data-path", default=None, help="folder holding MovieLens-100K's u.data")
    simulate.add_argument("--out", default=None,
                          help="folder for the report, every client's ledger and memo, and the plots auc.png, epsilon.png")
    simulate.add_argument("--compare", action="store_true",
                          help="also run plaintext submodel FL and full-model FedAvg with secure aggregation")
    simulate.add_argument("--no-plots", action="store_true",
                          help="with --out: skip auc.png and epsilon.png (they need the plot extra: matplotlib)")
    simulate.add_argument("--json", action="store_true", help="the report as one JSON object on stdout")
    simulate.add_argument("--quiet", action="store_true",
                          help="no progress or status lines on stderr (warnings and errors still go there)")
    _add_rr_arguments(simulate)
    simulate.set_defaults(run=_simulate)
