"""``fedprivacy bench secagg | flower | ldp | psu | round``: timed runs, checked against plaintext."""

from __future__ import annotations

import argparse
import sys

from ..hazmat.field import Modulus
from .output import _emit
from .rr import _add_rr_arguments, _rr_params, _rr_params_or_default

_MODULI = {"u32": Modulus.U32, "u64": Modulus.U64, "p61": Modulus.P61}


def _bench_secagg(args: argparse.Namespace) -> int:
    from ..bench.secagg import SecAggBenchOptions, run_secagg_bench
    from ..secagg import DropStage

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

    from ..bench.flower import FlowerBenchOptions, run_flower_bench

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


def _bench_ldp(args: argparse.Namespace) -> int:
    from ..bench.ldp import run_ldp_bench

    _emit(run_ldp_bench(args.union, args.real, _rr_params(args), repeats=args.repeats), args.json)
    return 0


def _bench_psu(args: argparse.Namespace) -> int:
    from ..bench.psu import run_psu_bench
    from ..secagg import DropStage

    result = run_psu_bench(
        args.clients, args.items, args.universe, args.dropout, DropStage(args.drop_stage),
        bloom_universe=args.bloom_universe, neighbours=args.neighbours, seed=args.seed,
    )
    _emit(result, args.json)
    return 0 if result["correct"] else 1


def _bench_round(args: argparse.Namespace) -> int:
    from ..bench.round import run_round_bench

    params = _rr_params_or_default(args)
    result = run_round_bench(args.clients, args.items, args.universe, args.dim, args.dropout, params, seed=args.seed)
    _emit(result, args.json)
    return 0 if result["correct"] else 1


def _register_secagg(which) -> None:
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


def _register_flower(which) -> None:
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


def _register_ldp(which) -> None:
    ldp = which.add_parser("ldp", help="one client's randomized response over a large union, timed")
    ldp.add_argument("--union", type=int, default=1_000_000)
    ldp.add_argument("--real", type=int, default=300)
    ldp.add_argument("--repeats", type=int, default=7)
    ldp.add_argument("--json", action="store_true")
    _add_rr_arguments(ldp)
    ldp.set_defaults(run=_bench_ldp)


def _register_psu(which) -> None:
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


def _register_round(which) -> None:
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


def register(commands) -> None:
    bench = commands.add_parser("bench", help="benchmarks")
    which = bench.add_subparsers(dest="bench", required=True)
    for add in (_register_secagg, _register_flower, _register_ldp, _register_psu, _register_round):
        add(which)
