"""``fedprivacy bench secagg | flower | ldp | ddp | psu | round``: timed runs, checked against plaintext.

This module only parses and checks the options. The harnesses that run the benchmarks live beside the
library, in the ``fedprivacy_bench`` package, which each ``_bench_*`` function imports when it runs:
the library itself never imports them.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from ..errors import InvalidParameters
from ..hazmat.field import Modulus
from ..secagg.params import MAX_CLIENTS, MAX_DIM
from . import ddp as ddp_options
from .checks import UsageError, check, fits_in_memory, fraction, in_user_terms, integer
from .output import _emit
from .rr import _add_rr_arguments, _rr_params, _rr_params_or_default

_MODULI = {"u32": Modulus.U32, "u64": Modulus.U64, "p61": Modulus.P61}


STAGES = ["advertise", "share", "input", "unmask"]
# The secure-aggregation library's parameter names, as the options that set them.
SECAGG_TERMS = {"dropout_fraction": "--dropout", "corrupt_fraction": "--corrupt", "neighbours": "--neighbours",
                "threshold": "--threshold", "full_graph=True": "--full-graph", "dim": "--dim", "n": "--clients"}
MAX_SEED = (1 << 32) - 1
MAX_UNIVERSE = (1 << 61) - 2


def _check_secagg_graph(args: argparse.Namespace, modulus: Modulus, full_graph: bool = False) -> None:
    """The graph and threshold the options ask for exist (checked by the library, in the options' words)."""
    from ..secagg import SecAggConfig

    try:
        SecAggConfig.create(list(range(1, args.clients + 1)), args.dim, modulus, corrupt_fraction=args.corrupt,
                            dropout_fraction=args.dropout, neighbours=args.neighbours, threshold=args.threshold,
                            full_graph=full_graph, adversary=getattr(args, "adversary", "semi-malicious"))
    except InvalidParameters as exc:
        raise UsageError(in_user_terms(str(exc), SECAGG_TERMS)) from None


def _bench_secagg(args: argparse.Namespace) -> int:
    from fedprivacy_bench.secagg import SecAggBenchOptions, run_secagg_bench

    from ..secagg import SecAggStep

    _check_secagg_graph(args, _MODULI[args.modulus], args.full_graph)
    fits_in_memory(args.clients * args.dim * 8 * 3 + args.dim * 8 * 8, "this benchmark")
    options = SecAggBenchOptions(
        clients=args.clients,
        dim=args.dim,
        dropout=args.dropout,
        drop_stage=SecAggStep(args.drop_stage),
        neighbours=args.neighbours,
        threshold=args.threshold,
        full_graph=args.full_graph,
        corrupt=args.corrupt,
        modulus=_MODULI[args.modulus],
        seed=args.seed,
        adversary=args.adversary,
        repeats=args.repeats,
        server_workers=args.server_workers,
    )
    result = run_secagg_bench(options)
    _emit(result, args.json)
    return 0 if result["correct"] else 1


def _bench_flower(args: argparse.Namespace) -> int:
    import importlib.util

    from fedprivacy_bench.flower import FlowerBenchOptions, run_flower_bench

    if importlib.util.find_spec("flwr") is None:
        print("fedprivacy: error: bench flower needs Flower: pip install 'fedprivacy[flower]'", file=sys.stderr)
        return 2
    check(args.threshold is None or args.neighbours is not None, "--threshold needs --neighbours")
    _check_secagg_graph(args, Modulus.U32)
    fits_in_memory(args.clients * args.dim * 4 * 12 + (256 << 20), "this benchmark")
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
    from fedprivacy_bench.ldp import run_ldp_bench

    check(args.real <= args.union, f"--real must be at most --union ({args.union}), got {args.real}")
    params = _rr_params(args)
    fits_in_memory(args.union * 8 * 12 + (64 << 20), "this benchmark")
    _emit(run_ldp_bench(args.union, args.real, params, repeats=args.repeats), args.json)
    return 0


def _bench_psu(args: argparse.Namespace) -> int:
    from fedprivacy_bench.psu import run_psu_bench

    from ..secagg import SecAggStep

    _check_psu(args)
    result = run_psu_bench(
        args.clients, args.items, args.universe, args.dropout, SecAggStep(args.drop_stage),
        bloom_universe=args.bloom_universe, neighbours=args.neighbours, seed=args.seed,
    )
    _emit(result, args.json)
    return 0 if result["correct"] else 1


def _bench_round(args: argparse.Namespace) -> int:
    from fedprivacy_bench.round import run_round_bench

    from ..submodel.workload import synthetic_workload
    from .simulate import check_executor
    from .submodel_run import executor_of, submodel_memory

    check(args.items <= args.universe, f"--items must be at most --universe ({args.universe}), got {args.items}")
    check_executor(args)
    check(not (args.adversary == "malicious" and args.executor == "ray"),
          "--executor ray does not apply to --adversary malicious (identity keys stay in this process)")
    first = _psu_first_bound(args)
    params = _rr_params_or_default(args)
    sizes = argparse.Namespace(dataset="synthetic", universe=args.universe, items=args.items, compare=True,
                               dim=args.dim, clients=args.clients)  # the bench keeps a copy of the model: as --compare
    # the workload first (per universe id a popularity, a rank and latents), then the round from its union
    fits_in_memory(args.universe * 8 * 20 + args.clients * args.items * 64 + (64 << 20), "this benchmark's workload")
    workload = synthetic_workload(clients=args.clients, universe=args.universe, items_per_user=args.items, seed=args.seed)
    union = np.unique(np.concatenate([c.train_items for c in workload.clients])).shape[0]
    fits_in_memory(submodel_memory(sizes, params, union), "this benchmark")
    result = run_round_bench(args.clients, args.items, args.universe, args.dim, args.dropout, params, seed=args.seed,
                             ddp=ddp_options.round_fields(args).get("ddp"), executor=executor_of(args),
                             adversary=args.adversary, repeats=args.repeats, sparse_rows_above=args.sparse_rows_above,
                             psu_first_bound=first, warm_up=args.warm_up, server_workers=args.server_workers,
                             workload=workload)
    _emit(result, args.json)
    return 0 if result["correct"] in (True, None) else 1  # None: no exact reference under DP noise


def _psu_first_bound(args: argparse.Namespace) -> int | str | None:
    """``--psu-first-bound``: ceiling, previous or a number of ids in [1, the ceiling]; ``--warm-up``
    only with previous; neither with ``--adversary malicious``."""
    text = args.psu_first_bound
    check(not (args.warm_up and text != "previous"), "--warm-up needs --psu-first-bound previous")
    check(text is None or args.adversary != "malicious",
          "--psu-first-bound does not apply to --adversary malicious (its rounds use the ceiling)")
    if text in (None, "ceiling", "previous"):
        return text
    ceiling = min(args.clients * args.items, args.universe)
    check(text.isdigit() and 1 <= int(text) <= ceiling,
          f"--psu-first-bound must be ceiling, previous or a number of ids in [1, {ceiling}] (clients x items, at "
          f"most the universe), got {text}")
    return int(text)


def _check_psu(args: argparse.Namespace) -> None:
    from ..secagg import SecAggConfig

    if args.bloom_universe is not None:
        check(args.bloom_universe >= args.universe,
              f"--bloom-universe must be at least --universe ({args.universe}), got {args.bloom_universe}")
    bound = min(args.clients * args.items, args.universe)
    table = 3 * max(64, int(bound * 1.4) + 256)  # the IBLT's words per client, about
    fits_in_memory(args.clients * (table * 8 * 4 + args.items * 8) + (args.bloom_universe or 0) * 2 + (64 << 20),
                   "this benchmark")
    try:
        SecAggConfig.create(list(range(1, args.clients + 1)), table, Modulus.P61,
                            dropout_fraction=max(args.dropout, 0.05), neighbours=args.neighbours)
    except InvalidParameters as exc:
        raise UsageError(in_user_terms(str(exc), SECAGG_TERMS)) from None


def _add_common(parser: argparse.ArgumentParser, clients_default: int | None = None, dropout_high: float = 1.0) -> None:
    required = clients_default is None
    parser.add_argument("--clients", type=integer(2, MAX_CLIENTS), default=clients_default, required=required,
                        help="number of clients")
    parser.add_argument("--dropout", type=fraction(dropout_high, high_open=dropout_high == 1.0), default=0.0,
                        help=f"fraction of clients that drop, in [0, {dropout_high:g}{')' if dropout_high == 1.0 else ']'}")


def _add_server_workers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server-workers", type=integer(1, 64), default=1, metavar="N",
                        help="processes of this machine for the server's unmasking (they receive the rebuilt "
                        "secrets; default 1: the server's own thread)")


def _register_secagg(which) -> None:
    secagg = which.add_parser("secagg", help="one secure-aggregation round, timed, checked against the plain sum")
    _add_common(secagg)
    secagg.add_argument("--dim", type=integer(1, MAX_DIM - 1), required=True, help="words per client input vector")
    secagg.add_argument("--drop-stage", choices=STAGES, default="unmask",
                        help="the stage dropped clients never send (unmask: they drop after masked input)")
    graph = secagg.add_mutually_exclusive_group()
    graph.add_argument("--neighbours", type=integer(2), default=None,
                       help="k, each client's neighbours in the SecAgg+ graph, even (default: the smallest safe k)")
    graph.add_argument("--full-graph", action="store_true", help="every client masks with every other (Bonawitz)")
    secagg.add_argument("--threshold", type=integer(2), default=None,
                        help="t, shares needed to recover a secret (default: the smallest safe t)")
    secagg.add_argument("--corrupt", type=fraction(1.0, high_open=True), default=0.05,
                        help="fraction of clients assumed to collude with the server, in [0, 1)")
    secagg.add_argument("--modulus", choices=sorted(_MODULI), default="u32", help="the field: 2^32, 2^64 or 2^61 - 1")
    secagg.add_argument("--seed", type=integer(0, MAX_SEED), default=0,
                        help="seeds the public test inputs and who drops (keys and masks come from the OS CSPRNG)")
    secagg.add_argument("--adversary", choices=["curious", "semi-malicious", "malicious"], default="semi-malicious",
                        help="the threshold model the clients' policy requires; malicious (signed advertisements and "
                             "a consistency check, spec §14) also times the semi-malicious round beside it")
    secagg.add_argument("--repeats", type=integer(1, 1000), default=5,
                        help="with --adversary malicious: rounds per mode, interleaved (medians reported)")
    _add_server_workers(secagg)
    secagg.add_argument("--json", action="store_true", help="the result as one JSON object on stdout")
    secagg.set_defaults(run=_bench_secagg)


def _register_flower(which) -> None:
    flower = which.add_parser(
        "flower", help="Flower's SecAgg+ and fedprivacy's drop-in, one round each through the same in-memory grid"
    )
    _add_common(flower)
    flower.add_argument("--dim", type=integer(1, MAX_DIM - 1), required=True, help="floats per client update")
    flower.add_argument("--drop-stage", choices=STAGES, default="unmask",
                        help="the stage dropped nodes never answer (unmask: they drop after masked input)")
    flower.add_argument("--neighbours", type=integer(2), default=None,
                        help="k, even (num_shares = k + 1; default: the smallest safe k)")
    flower.add_argument("--threshold", type=integer(2), default=None,
                        help="reconstruction threshold t, with --neighbours (default: the smallest safe t)")
    flower.add_argument("--corrupt", type=fraction(1.0, high_open=True), default=0.05,
                        help="fraction of clients assumed to collude with the server, in [0, 1)")
    flower.add_argument("--seed", type=integer(0, MAX_SEED), default=0,
                        help="seeds the public test updates, node ids and who drops (keys and masks: OS CSPRNG)")
    flower.add_argument("--json", action="store_true", help="the result as one JSON object on stdout")
    flower.set_defaults(run=_bench_flower)


def _register_ldp(which) -> None:
    ldp = which.add_parser("ldp", help="one client's randomized response over a large union, timed")
    ldp.add_argument("--union", type=integer(1, MAX_UNIVERSE), default=1_000_000, help="ids in the union U")
    ldp.add_argument("--real", type=integer(0), default=300, help="ids of U the client really holds, at most --union")
    ldp.add_argument("--repeats", type=integer(1, 10_000), default=7, help="timed repetitions (the median is reported)")
    ldp.add_argument("--json", action="store_true", help="the result as one JSON object on stdout")
    _add_rr_arguments(ldp)
    ldp.set_defaults(run=_bench_ldp)


def _bench_ddp(args: argparse.Namespace) -> int:
    from fedprivacy_bench.ddp import run_ddp_bench

    _emit(run_ddp_bench(args.scale, args.count, args.opendp_count, args.repeats), args.json)
    return 0


def _register_ddp(which) -> None:
    ddp = which.add_parser("ddp", help="exact discrete Gaussian samples per second, against OpenDP's")
    ddp_options.add_bench_options(ddp)
    ddp.add_argument("--json", action="store_true", help="the result as one JSON object on stdout")
    ddp.set_defaults(run=_bench_ddp)


def _register_psu(which) -> None:
    psu = which.add_parser("psu", help="one private set union (masked IBLT over secure aggregation), timed")
    _add_common(psu)
    psu.add_argument("--items", type=integer(1), required=True, help="ids per client (drawn from the universe)")
    psu.add_argument("--universe", type=integer(1, MAX_UNIVERSE), required=True, help="number of possible ids")
    psu.add_argument("--drop-stage", choices=STAGES, default="input", help="the stage dropped clients never send")
    psu.add_argument("--neighbours", type=integer(2), default=None,
                     help="k, each client's neighbours in the SecAgg+ graph, even (default: the smallest safe k)")
    psu.add_argument("--bloom-universe", type=integer(1, MAX_UNIVERSE), default=None,
                     help="also run the Bloom-filter variant over a universe of this many ids (it scans them all)")
    psu.add_argument("--seed", type=integer(0, MAX_SEED), default=0,
                     help="seeds the public test sets and who drops (keys, masks and hash keys: OS CSPRNG)")
    psu.add_argument("--json", action="store_true", help="the result as one JSON object on stdout")
    psu.set_defaults(run=_bench_psu)


def _register_round(which) -> None:
    from .simulate import MAX_DROPOUT, add_executor_arguments

    round_bench = which.add_parser("round", help="one secure submodel round, checked against plaintext")
    round_bench.add_argument("--clients", type=integer(3, MAX_CLIENTS), default=100, help="number of clients")
    round_bench.add_argument("--items", type=integer(1), default=301, help="items per synthetic client")
    round_bench.add_argument("--universe", type=integer(2, 1 << 61), default=143_534, help="number of item ids (model rows)")
    round_bench.add_argument("--dim", type=integer(1, MAX_DIM), default=18, help="floats per model row")
    round_bench.add_argument("--dropout", type=fraction(MAX_DROPOUT), default=0.1,
                             help=f"fraction of clients that drop, in [0, {MAX_DROPOUT}]: half before the union, half "
                             "before the upload")
    round_bench.add_argument("--seed", type=integer(0, MAX_SEED), default=0,
                             help="seeds the workload, the model and who drops (protocol randomness: OS CSPRNG)")
    round_bench.add_argument("--adversary", choices=["semi-malicious", "malicious"], default="semi-malicious",
                             help="the secure sums' mode; malicious gives every client an identity and the server the "
                             "trust store (signed sums, spec §14), and times semi-malicious rounds beside it")
    round_bench.add_argument("--repeats", type=integer(1, 100), default=3,
                             help="with --adversary malicious: rounds per mode, interleaved (medians reported)")
    ddp_options.add_round_options(round_bench)
    add_executor_arguments(round_bench)
    round_bench.add_argument("--sparse-rows-above", type=integer(2, MAX_CLIENTS), default=None,
                             help="the rows' secure sum is a sparse graph above this many parties (default: the "
                             "round settings', 1000); the full graph at or below it")
    round_bench.add_argument("--psu-first-bound", default=None, metavar="BOUND",
                             help="the first set-union table's bound: ceiling (clients x items, at most the universe; "
                             "the default), a number of ids, or previous: 1.25 x the union of a preceding round with "
                             "the next seeded drops (computed in plaintext; run for real with --warm-up), as a server "
                             "running many rounds sizes it")
    round_bench.add_argument("--warm-up", action="store_true",
                             help="with --psu-first-bound previous: run the preceding round first (the time and the "
                             "memory peak cover both rounds; the JSON's times are the measured round's)")
    _add_server_workers(round_bench)
    round_bench.add_argument("--json", action="store_true", help="the result as one JSON object on stdout")
    _add_rr_arguments(round_bench, default="--cpp 2")
    round_bench.set_defaults(run=_bench_round)


def register(commands) -> None:
    bench = commands.add_parser("bench", help="benchmarks of each protocol, checked against plaintext")
    which = bench.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    for add in (_register_secagg, _register_flower, _register_ldp, _register_ddp, _register_psu, _register_round):
        add(which)
