"""Command line: ``fedprivacy simulate | bench | privacy | audit``. ``--json`` puts one JSON object on stdout;
progress goes to stderr."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import FedPrivacyError, InvalidParameters
from .hazmat.field import Modulus

_MODULI = {"u32": Modulus.U32, "u64": Modulus.U64, "p61": Modulus.P61}


def _emit(result: dict[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, sort_keys=True))
    else:
        width = max(len(k) for k in result)
        for key, value in result.items():
            shown = f"{value:.6g}" if isinstance(value, float) else value
            print(f"{key:<{width}}  {shown}")


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


def _evaluate(clients, table, head) -> dict[str, float]:
    """Test AUC and mean log-loss over every client's test split (the model outputs click probabilities)."""
    from .submodel import auc, predict

    scores, labels = zip(*[predict(c, table, head) for c in clients])
    scores, clicked = np.concatenate(scores), np.concatenate(labels) > 0.5
    p = np.clip(scores, 1e-12, 1.0 - 1e-12)
    loss = float(-np.mean(np.where(clicked, np.log(p), np.log1p(-p)))) if p.size else float("nan")
    return {"test_auc": auc(scores, clicked), "test_loss": loss}


def _simulate_submodel(args: argparse.Namespace) -> int:
    from .progress import Progress

    progress = Progress(args.rounds, "simulate", enabled=not args.quiet, width=20, show_count=False, plain_marks=2)
    lock = None
    if args.out:  # one run at a time per --out (fedprivacy.adapters.lock)
        from .adapters.lock import lock_directory

        lock = lock_directory(args.out)
        if lock.stale is not None:
            from .adapters.storage import remove_interrupted_writes

            removed = remove_interrupted_writes(args.out)
            print(f"fedprivacy: warning: {args.out} was left locked by {lock.stale.description}, which is no longer "
                  "running; the interrupted run's ledgers and memos are checked as they load"
                  + (f" ({len(removed)} temporary files of its unfinished writes removed)" if removed else ""), file=sys.stderr)
    try:
        return _run_submodel_simulation(args, progress)
    finally:
        progress.close()  # an error message must not land on the progress line
        if lock is not None:
            lock.release()


def _run_submodel_simulation(args: argparse.Namespace, progress) -> int:
    from .accounting import replay
    from .ldp import RRParameters
    from .secagg import DropStage
    from .submodel import init_model, synthetic_workload
    from .submodel.reference import ReferenceClient, ReferenceServer
    from .submodel.secure import ClientState, RoundDrops, RoundSettings, secure_round

    params = _rr_params(args) if (args.epsilon is not None or args.p1 is not None) else RRParameters.preset(args.cpp or 2)
    progress.log(
        f"fedprivacy simulate: secure submodel learning, {args.clients} clients x {args.items} items over "
        f"{args.universe} ids, d={args.dim}, {args.rounds} rounds, p=({', '.join(params.as_strings().values())}), "
        f"{args.dropout:.0%} dropout per round"
    )
    if args.dataset == "movielens-100k":
        from .adapters.movielens import load_movielens_100k

        if args.data_path is None:
            raise InvalidParameters("--dataset movielens-100k needs --data-path DIR (the folder holding u.data)")
        workload = load_movielens_100k(args.data_path, seed=args.seed, max_users=args.clients)
    else:
        workload = synthetic_workload(clients=args.clients, universe=args.universe, items_per_user=args.items, seed=args.seed)
    out_dir = Path(args.out) if args.out else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    # Local trainings finished in the round under way, for the progress line.
    training = {"stage": "", "done": 0, "expected": 1}

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
    for state in states.values():  # what loading rolled forward after an interrupted run (shown even with --quiet)
        for note in getattr(state.store, "recovered", []):
            (progress.log if progress.enabled else lambda text: print(text, file=sys.stderr))(f"fedprivacy: recovered: {note}")
    universe = workload.universe
    server = ReferenceServer(*init_model(np.arange(universe, dtype=np.uint64), args.dim, seed=args.seed))
    largest = args.items if args.dataset == "synthetic" else 1000  # a public cap per client
    # The aggregation threshold must tolerate the scripted drops even for a handful of clients.
    tolerance = min(0.45, max(0.1, args.dropout) + 1.0 / len(workload.clients))
    settings = RoundSettings(universe=universe, dropout_fraction=tolerance, max_set_size=largest)
    rng = np.random.default_rng(args.seed + 1)  # which synthetic clients drop: public simulation choice

    progress.update(stage="evaluating the initial model")
    rows = [{"round": 0, **_evaluate(workload.clients, server.table, server.head)}]
    baselines = _start_baselines(args, workload, universe) if args.compare else None
    if baselines is not None:
        rows[0].update(_baseline_aucs(baselines, workload))
    for round_index in range(1, args.rounds + 1):
        stage = f"round {round_index}/{args.rounds}"
        progress.update(round_index - 1, stage=f"{stage}: set union, randomized response")
        dropped = [int(p) for p in rng.choice(sorted(states), size=int(round(args.dropout * len(states))), replace=False)]
        half = len(dropped) // 2
        drops = RoundDrops(psu={p: DropStage.INPUT for p in dropped[:half]}, upload={p: DropStage.INPUT for p in dropped[half:]})
        training.update(stage=f"{stage}: training, upload", done=0, expected=len(states) - half)  # PSU drops do not train
        outcome = secure_round(states, server, settings, round_index, drops)
        progress.update(stage=f"{stage}: evaluating")
        spent = np.array([replay(state.ledger).spent() for state in states.values()])
        row = {
            "round": round_index,
            **_evaluate(workload.clients, server.table, server.head),
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
        rows.append(row)
        progress.log(f"{stage}: auc {row['test_auc']:.4f}, loss {row['test_loss']:.4f}, union {row['union_size']}, "
                     f"eps spent {row['epsilon_spent_max']:.3f}, {row['protocol_seconds']:.2f} s")
        if baselines is not None:
            progress.update(stage=f"{stage}: baselines (plaintext, FedAvg + secagg)")
            _advance_baselines(baselines, workload, universe, settings)
            row.update(_baseline_aucs(baselines, workload))
    if out_dir is not None:
        progress.update(args.rounds, stage="writing the report" + ("" if args.no_plots else " and plots"))
    report = {
        "mode": "secure-submodel",
        "dataset": args.dataset,
        "clients": len(workload.clients),
        "items_per_client": args.items if args.dataset == "synthetic" else None,
        "universe": universe,
        "dim": args.dim,
        "parameters": params.as_strings(),
        "epsilon_1": params.epsilon_1,
        "epsilon_inf": params.epsilon_inf,
        "rounds": rows,
        "final_test_auc": rows[-1]["test_auc"],
    }
    if baselines is not None:
        report["comparison"] = _compare_table(report, rows, baselines)
    missing_plots = None
    if out_dir is not None:
        (out_dir / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
        written = ["report", "per-client ledgers/memos"]
        if not args.no_plots:
            from .report_plots import PlotsUnavailable, write_plots

            try:
                written += [path.name for path in write_plots(report, out_dir)]
            except PlotsUnavailable as exc:
                missing_plots = f"fedprivacy: no auc.png or epsilon.png: {exc}"
    progress.close()
    if missing_plots is not None:  # a warning, shown even with --quiet
        print(missing_plots, file=sys.stderr)
    if out_dir is not None:
        progress.log(f"{', '.join(written)} written under {out_dir} (audit: fedprivacy audit {out_dir})")
    if args.json:
        print(json.dumps(report, sort_keys=True))
        return 0
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
    return 0


def _start_baselines(args: argparse.Namespace, workload, universe: int) -> dict:
    from .submodel import init_model

    baselines = {}
    for name in ("plaintext", "fedavg"):
        table, head = init_model(np.arange(universe, dtype=np.uint64), args.dim, seed=args.seed)
        baselines[name] = {"table": table, "head": head, "bytes": {}}
    return baselines


def _baseline_aucs(baselines: dict, workload) -> dict[str, float]:
    """The baselines' test AUC now, as the per-round row keys ``plaintext_test_auc``, ``fedavg_test_auc``."""
    return {
        f"{name}_test_auc": _evaluate(workload.clients, model["table"], model["head"])["test_auc"]
        for name, model in baselines.items()
    }


def _advance_baselines(baselines: dict, workload, universe: int, settings) -> None:
    from .submodel import plaintext_round
    from .submodel.compare import fedavg_secure_round

    plain = baselines["plaintext"]
    plain["head"] = plaintext_round(workload.clients, plain["table"], plain["head"])
    width = plain["head"].weights.shape[0] + 1
    sizes = [np.unique(c.train_items).shape[0] for c in workload.clients]
    moved = float(np.median(sizes)) * width * 4 + width * 4  # its real rows and the head, as float32
    plain["bytes"] = {"upload_bytes_per_client": moved, "download_bytes_per_client": moved}
    full = baselines["fedavg"]
    full["head"], full["bytes"] = fedavg_secure_round(
        workload.clients, full["table"], full["head"], universe, settings.clip, settings.max_samples
    )


def _compare_table(report: dict, rows: list[dict], baselines: dict) -> list[dict]:
    last = rows[-1]
    return [
        {
            "method": "secure submodel FL (this library)",
            "test_auc": last["test_auc"],
            "upload_bytes_per_client": last["upload_bytes_per_client"],
            "download_bytes_per_client": last["download_bytes_per_client"],
            "privacy": f"server sees U, each S'' (eps_1 {report['epsilon_1']:.2f}, eps_inf {report['epsilon_inf']:.2f}), per-row sums",
        },
        {
            "method": "plaintext submodel FL",
            "test_auc": last["plaintext_test_auc"],
            **baselines["plaintext"]["bytes"],
            "privacy": "none: server sees every real index set and update",
        },
        {
            "method": "full-model FedAvg + secure aggregation",
            "test_auc": last["fedavg_test_auc"],
            **baselines["fedavg"]["bytes"],
            "privacy": "server sees only the sum; every client downloads the whole model",
        },
    ]


def _simulate_secagg(args: argparse.Namespace) -> int:
    from .secagg import DropoutSchedule, DropStage, Quantizer, SecAggConfig, run_secagg_round

    if not args.quiet:
        print("fedprivacy simulate --mode secagg: one secure-aggregation round of float updates (quantized, weighted mean).",
              file=sys.stderr)
    party_ids = list(range(1, args.clients + 1))
    config = SecAggConfig.create(party_ids, args.dim + 1, Modulus.U32, dropout_fraction=0.2)
    quantizer = Quantizer(Modulus.U32, clip=2.0, num_clients=args.clients, max_weight=100.0)
    rng = np.random.default_rng(args.seed)  # synthetic public demo data
    updates = {p: rng.normal(0.0, 0.5, args.dim) for p in party_ids}
    weights = {p: float(rng.integers(1, 101)) for p in party_ids}
    stages = [DropStage.SHARE, DropStage.INPUT, DropStage.UNMASK]
    schedule = DropoutSchedule({party_ids[i]: stages[i % 3] for i in range(min(3, args.clients // 5))})
    inputs = {p: quantizer.encode(updates[p], weights[p]) for p in party_ids}
    report = run_secagg_round(config, inputs, schedule)
    if report.result is None:
        print(f"round aborted: {report.aborted}", file=sys.stderr)
        return 1
    mean = quantizer.mean(report.result)
    counted = sorted(report.input_ids)
    clipped = {p: np.clip(updates[p], -2.0, 2.0) for p in counted}
    plain = sum(weights[p] * clipped[p] for p in counted) / sum(weights[p] for p in counted)
    _emit(
        {
            "mode": "secure-aggregation",
            "clients": args.clients,
            "dim": args.dim,
            "neighbours": config.neighbours,
            "threshold": config.threshold,
            "dropped": {str(p): s.value for p, s in schedule.drops.items()},
            "summed_clients": len(counted),
            "max_abs_error_vs_plaintext_mean": float(np.max(np.abs(mean - plain))),
            "quantization_step": 1.0 / float(quantizer.scale or 1.0),
            "server_seconds": report.server_seconds,
        },
        args.json,
    )
    return 0


def _bench_secagg(args: argparse.Namespace) -> int:
    from .bench.secagg import SecAggBenchOptions, run_secagg_bench
    from .secagg import DropStage

    options = SecAggBenchOptions(
        clients=args.clients,
        dim=args.dim,
        dropout=args.dropout,
        drop_stage=DropStage(args.drop_stage),
        neighbours=args.neighbours,
        threshold=args.threshold,
        full_graph=args.full_graph,
        corrupt=args.corrupt,
        modulus=_MODULI[args.modulus],
        seed=args.seed,
    )
    result = run_secagg_bench(options)
    _emit(result, args.json)
    return 0 if result["correct"] else 1


def _bench_flower(args: argparse.Namespace) -> int:
    import importlib.util

    from .bench.flower import FlowerBenchOptions, run_flower_bench

    if importlib.util.find_spec("flwr") is None:
        print("fedprivacy: error: bench flower needs Flower: pip install 'fedprivacy[flower]'", file=sys.stderr)
        return 2
    options = FlowerBenchOptions(
        clients=args.clients,
        dim=args.dim,
        dropout=args.dropout,
        drop_stage=args.drop_stage,
        neighbours=args.neighbours,
        threshold=args.threshold,
        corrupt=args.corrupt,
        seed=args.seed,
    )
    result = run_flower_bench(options)
    _emit(result, args.json)
    return 0 if result["ours_correct"] else 1


def _rr_params(args: argparse.Namespace):
    from .errors import InvalidParameters
    from .ldp import RRParameters

    chosen = [args.cpp is not None, args.epsilon is not None, any(getattr(args, f"p{i}") is not None for i in range(1, 5))]
    if sum(chosen) != 1:
        raise InvalidParameters("give exactly one of: --cpp N, --epsilon EPS_INF [--epsilon-1 EPS_1], --p1..--p4")
    if args.cpp is not None:
        return RRParameters.preset(args.cpp)
    if args.epsilon is not None:
        return RRParameters.from_epsilons(args.epsilon, args.epsilon_1)
    if any(getattr(args, f"p{i}") is None for i in range(1, 5)):
        raise InvalidParameters("--p1, --p2, --p3 and --p4 go together")
    return RRParameters(args.p1, args.p2, args.p3, args.p4, allow_insecure=args.allow_insecure)


def _round_up(value: float, digits: int = 2) -> float:
    """Two decimals, never below the value (a privacy figure must not be understated)."""
    import math

    if math.isinf(value):
        return value
    scale = 10**digits
    return math.ceil(value * scale - 1e-9) / scale


def _finite(value: float) -> float | str:
    return "inf" if value == float("inf") else value


def _privacy(args: argparse.Namespace) -> int:
    from .ldp import scale_for_relation, theorem_5_5_probabilities

    params = _rr_params(args)
    result: dict[str, object] = {name: str(getattr(params, name)) for name in ("p1", "p2", "p3", "p4", "p5", "p6")}
    result.update({f"{name}_float": float(getattr(params, name)) for name in ("p5", "p6")})
    result["epsilon_1"] = _finite(params.epsilon_1)
    result["epsilon_inf"] = _finite(params.epsilon_inf)
    result["epsilon_1_rounded_up"] = _finite(_round_up(params.epsilon_1))
    result["epsilon_inf_rounded_up"] = _finite(_round_up(params.epsilon_inf))
    if args.reports is not None:
        result["reports"] = args.reports
        result["epsilon_after_reports"] = _finite(params.epsilon_after(args.reports))
    result["relation"] = "add-remove-one-index (per index; replace-one doubles it)"
    result["epsilon_inf_replace_one"] = _finite(scale_for_relation(params.epsilon_inf, "replace-one-index"))
    if args.set_size is not None:
        result["epsilon_inf_whole_set"] = _finite(scale_for_relation(params.epsilon_inf, "whole-set", args.set_size))
    if args.clients is not None:
        p7, p8 = theorem_5_5_probabilities(params, 1, args.clients - 1)
        result["p7_one_holder"] = float(p7)
        result["p8_one_holder"] = float(p8)
    _emit(result, args.json)
    return 0


def _audit(args: argparse.Namespace) -> int:
    from .adapters.audit import audit_directory, render_text

    result = audit_directory(args.ledger_dir)  # reads only; every problem as a finding with file and line
    if args.json:
        print(json.dumps(result.to_json(), sort_keys=True, allow_nan=False))
    else:
        print(render_text(result))
    return 0 if result.ok else 1


def _bench_ldp(args: argparse.Namespace) -> int:
    from .bench.ldp import run_ldp_bench

    _emit(run_ldp_bench(args.union, args.real, _rr_params(args), repeats=args.repeats), args.json)
    return 0


def _bench_psu(args: argparse.Namespace) -> int:
    from .bench.psu import run_psu_bench
    from .secagg import DropStage

    result = run_psu_bench(
        args.clients, args.items, args.universe, args.dropout, DropStage(args.drop_stage),
        bloom_universe=args.bloom_universe, neighbours=args.neighbours, seed=args.seed,
    )
    _emit(result, args.json)
    return 0 if result["correct"] else 1


def _bench_round(args: argparse.Namespace) -> int:
    from .bench.round import run_round_bench
    from .ldp import RRParameters

    params = _rr_params(args) if (args.epsilon is not None or args.p1 is not None) else RRParameters.preset(args.cpp or 2)
    result = run_round_bench(args.clients, args.items, args.universe, args.dim, args.dropout, params, seed=args.seed)
    _emit(result, args.json)
    return 0 if result["correct"] else 1


def _add_rr_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cpp", type=int, choices=range(1, 6), help="the paper's preset CPP1..CPP5")
    parser.add_argument("--epsilon", type=float, help="target epsilon_inf (symmetric parameters)")
    parser.add_argument("--epsilon-1", type=float, default=None, help="target epsilon for one report (default: --epsilon)")
    for i in range(1, 5):
        parser.add_argument(f"--p{i}", type=str, default=None, help="a probability, e.g. 15/16 or 0.9375")
    parser.add_argument("--allow-insecure", action="store_true", help="accept an infinite epsilon_inf")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fedprivacy", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

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

    bench = commands.add_parser("bench", help="benchmarks")
    which = bench.add_subparsers(dest="bench", required=True)
    secagg = which.add_parser("secagg", help="one secure-aggregation round, timed")
    secagg.add_argument("--clients", type=int, required=True)
    secagg.add_argument("--dim", type=int, required=True)
    secagg.add_argument("--dropout", type=float, default=0.0)
    secagg.add_argument(
        "--drop-stage",
        choices=["advertise", "share", "input", "unmask"],
        default="unmask",
        help="the stage dropped clients never send (default unmask: they drop after masked input)",
    )
    graph = secagg.add_mutually_exclusive_group()
    graph.add_argument("--neighbours", type=int, default=None)
    graph.add_argument("--full-graph", action="store_true")
    secagg.add_argument("--threshold", type=int, default=None)
    secagg.add_argument("--corrupt", type=float, default=0.05)
    secagg.add_argument("--modulus", choices=sorted(_MODULI), default="u32")
    secagg.add_argument("--seed", type=int, default=0)
    secagg.add_argument("--json", action="store_true")
    secagg.set_defaults(run=_bench_secagg)
    flower = which.add_parser(
        "flower", help="Flower's SecAgg+ and fedprivacy's drop-in, one round each through the same in-memory grid"
    )
    flower.add_argument("--clients", type=int, required=True)
    flower.add_argument("--dim", type=int, required=True)
    flower.add_argument("--dropout", type=float, default=0.0)
    flower.add_argument(
        "--drop-stage",
        choices=["advertise", "share", "input", "unmask"],
        default="unmask",
        help="the stage dropped nodes never answer (default unmask: they drop after masked input)",
    )
    flower.add_argument("--neighbours", type=int, default=None, help="k (num_shares = k + 1)")
    flower.add_argument("--threshold", type=int, default=None)
    flower.add_argument("--corrupt", type=float, default=0.05)
    flower.add_argument("--seed", type=int, default=0)
    flower.add_argument("--json", action="store_true")
    flower.set_defaults(run=_bench_flower)
    ldp = which.add_parser("ldp", help="one client's randomized response over a large union, timed")
    ldp.add_argument("--union", type=int, default=1_000_000)
    ldp.add_argument("--real", type=int, default=300)
    ldp.add_argument("--repeats", type=int, default=7)
    ldp.add_argument("--json", action="store_true")
    _add_rr_arguments(ldp)
    ldp.set_defaults(run=_bench_ldp)

    psu = which.add_parser("psu", help="one private set union (masked IBLT over secure aggregation), timed")
    psu.add_argument("--clients", type=int, required=True)
    psu.add_argument("--items", type=int, required=True)
    psu.add_argument("--universe", type=int, required=True)
    psu.add_argument("--dropout", type=float, default=0.0)
    psu.add_argument("--drop-stage", choices=["advertise", "share", "input", "unmask"], default="input")
    psu.add_argument("--neighbours", type=int, default=None)
    psu.add_argument("--bloom-universe", type=int, default=None, help="also run the Bloom variant's universe scan")
    psu.add_argument("--seed", type=int, default=0)
    psu.add_argument("--json", action="store_true")
    psu.set_defaults(run=_bench_psu)

    round_bench = which.add_parser("round", help="one secure submodel round, checked against plaintext")
    round_bench.add_argument("--clients", type=int, default=100)
    round_bench.add_argument("--items", type=int, default=301)
    round_bench.add_argument("--universe", type=int, default=143_534)
    round_bench.add_argument("--dim", type=int, default=18)
    round_bench.add_argument("--dropout", type=float, default=0.1)
    round_bench.add_argument("--seed", type=int, default=0)
    round_bench.add_argument("--json", action="store_true")
    _add_rr_arguments(round_bench)
    round_bench.set_defaults(run=_bench_round)

    privacy = commands.add_parser("privacy", help="p5, p6 and the epsilons of randomized-response parameters")
    _add_rr_arguments(privacy)
    privacy.add_argument("--reports", type=int, default=None, help="also: epsilon after this many reports")
    privacy.add_argument("--set-size", type=int, default=None, help="public bound m for the whole-set relation")
    privacy.add_argument("--clients", type=int, default=None, help="also: Theorem 5.5's p7, p8 for n clients")
    privacy.add_argument("--json", action="store_true")
    privacy.set_defaults(run=_privacy)

    audit = commands.add_parser(
        "audit",
        help="verify and summarise the privacy ledgers and memos in a directory: every problem with its file and line "
        "(exit 1 on a broken, cut or missing ledger, a damaged or rolled-back memo, an accountant disagreement, "
        "or a client over its cap)",
    )
    audit.add_argument("ledger_dir")
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(run=_audit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except FedPrivacyError as exc:
        print(f"fedprivacy: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
