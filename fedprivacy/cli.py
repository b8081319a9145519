"""Command line: ``fedprivacy simulate | bench``. ``--json`` puts one JSON object on stdout;
progress goes to stderr."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import numpy as np

from .errors import FedPrivacyError
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
    from .secagg import DropoutSchedule, DropStage, Quantizer, SecAggConfig, run_secagg_round

    print(
        "fedprivacy simulate: the secure submodel round is not built yet; "
        "this runs one secure-aggregation round of float updates (quantized, weighted mean).",
        file=sys.stderr,
    )
    party_ids = list(range(1, args.clients + 1))
    config = SecAggConfig.create(party_ids, args.dim + 1, Modulus.U32, dropout_fraction=0.2)
    quantizer = Quantizer(Modulus.U32, clip=args.clip, num_clients=args.clients, max_weight=100.0)
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
    clipped = {p: np.clip(updates[p], -args.clip, args.clip) for p in counted}
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fedprivacy", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    simulate = commands.add_parser("simulate", help="run an in-process simulation on synthetic data")
    simulate.add_argument("--clients", type=int, default=20)
    simulate.add_argument("--dim", type=int, default=1000)
    simulate.add_argument("--clip", type=float, default=2.0)
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument("--json", action="store_true")
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
