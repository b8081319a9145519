"""``fedprivacy simulate``: secure submodel learning on a synthetic or MovieLens workload, in process
(the run itself: :mod:`.submodel_run`; ``--mode secagg``, one secure-aggregation round: :mod:`.secagg_demo`).

Every argument is checked here, before anything is allocated or written; options that the chosen mode
or data set would ignore are refused rather than dropped silently.
"""

from __future__ import annotations

import argparse

from ..secagg.params import MAX_CLIENTS, MAX_DIM
from . import ddp as ddp_options
from .checks import (
    UsageError,
    address,
    check,
    fits_in_memory,
    fraction,
    integer,
    number,
    readable_file,
    refuse_ignored,
    writable_out_dir,
)
from .rr import _add_rr_arguments, _rr_given
from .secagg_demo import _simulate_secagg, secagg_demo_memory

# Defaults of the options whose meaning depends on --mode and --dataset (None on the parser, so that
# an option given where it does not apply can be told from one left at its default).
SYNTHETIC = {"items": 301, "universe": 143_534}
SUBMODEL = {"rounds": 8, "dropout": 0.1, "dataset": "synthetic"}
MAX_DROPOUT = 0.4  # the simulation's aggregation threshold tolerates at most this fraction dropping
MOVIELENS_USERS = 943


def _simulate(args: argparse.Namespace) -> int:
    if args.mode == "secagg":
        _check_secagg_mode(args)
        return _simulate_secagg(args)
    from .rr import _rr_params_or_default
    from .submodel_run import _simulate_submodel, submodel_memory

    _check_submodel_mode(args)
    fits_in_memory(submodel_memory(args, _rr_params_or_default(args)), "this simulation")
    return _simulate_submodel(args)


def _check_secagg_mode(args: argparse.Namespace) -> None:
    refuse_ignored(args, ["items", "universe", "rounds", "dropout", "dataset", "data_path", "out", "compare",
                          "no_plots", "epsilon_cap", "executor", "ray_address", "psu_first_bound", "server_workers", *ddp_options.ROUND_OPTIONS,
                          *_rr_given(args)],
                   "to --mode secagg (one secure-aggregation round of synthetic float updates)")
    check(args.dim < MAX_DIM, f"--dim must be an integer in [1, {MAX_DIM - 1}] with --mode secagg, got {args.dim}")
    fits_in_memory(secagg_demo_memory(args.clients, args.dim), "this secure-aggregation round")


def _check_submodel_mode(args: argparse.Namespace) -> None:
    ddp_options.round_fields(args)  # the distributed-DP options, checked before anything runs
    check_executor(args)
    for name, value in SUBMODEL.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.dataset == "movielens-100k":
        refuse_ignored(args, ["items", "universe"], "to --dataset movielens-100k (its users and movies set the sizes)")
        check(args.data_path is not None, "--dataset movielens-100k needs --data-path DIR (the folder holding u.data)")
        readable_file("--data-path", _u_data(args.data_path), "MovieLens-100K (download it yourself)")
        check(args.clients <= MOVIELENS_USERS,
              f"--clients must be at most {MOVIELENS_USERS} with --dataset movielens-100k, got {args.clients}")
    else:
        refuse_ignored(args, ["data_path"], "to --dataset synthetic")
        for name, value in SYNTHETIC.items():
            if getattr(args, name) is None:
                setattr(args, name, value)
        check(args.universe >= 2, f"--universe must be an integer >= 2, got {args.universe}")
        check(args.items <= args.universe,
              f"--items must be at most --universe ({args.universe}), got {args.items}")
    if args.out is None:
        refuse_ignored(args, ["no_plots"], "without --out (no plots are drawn without it)")
    else:
        writable_out_dir("--out", args.out)


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """``--executor`` and ``--ray-address`` (simulate and bench round)."""
    parser.add_argument("--executor", choices=["inprocess", "ray"], default=None,
                        help="where the clients run: inprocess (this process, the default), or ray (Ray actors; the "
                        "server and the message flow stay here, the round is the same)")
    parser.add_argument("--ray-address", type=address, default=None, metavar="ADDRESS",
                        help="with --executor ray: the cluster to join ('auto', 'ray://HOST:10001'; default: a local Ray)")


def check_executor(args: argparse.Namespace) -> None:
    """``--ray-address`` only with ``--executor ray``."""
    if args.executor != "ray":
        refuse_ignored(args, ["ray_address"], "without --executor ray")


def _u_data(folder: str):
    from pathlib import Path

    path = Path(folder)
    if not path.is_dir():
        raise UsageError(f"--data-path {folder} is not a directory (it must hold MovieLens-100K's u.data)")
    return path / "u.data"


def register(commands) -> None:
    simulate = commands.add_parser(
        "simulate", help="secure submodel learning on a synthetic or MovieLens workload, in process",
        description="Train a click model with secure submodel learning, in one process: private set union, "
        "randomized response under each client's budget, per-row secure aggregation, for a few rounds. "
        "Prints test AUC, loss, union size, bytes per client, protocol time and epsilon spent per round, and "
        "which clients sat a round out and why.",
    )
    simulate.add_argument("--mode", choices=["submodel", "secagg"], default="submodel",
                          help="submodel: the whole secure submodel round; secagg: one secure-aggregation round "
                          "of float updates (uses only --clients, --dim, --seed, --json, --quiet)")
    simulate.add_argument("--clients", type=integer(3, MAX_CLIENTS), default=100,
                          help="number of clients (with MovieLens: its first N users)")
    simulate.add_argument("--items", type=integer(1), default=None,
                          help="items per synthetic client, its real index set with its test split (default: 301)")
    simulate.add_argument("--universe", type=integer(2, 1 << 61), default=None,
                          help="number of item ids, the rows of the model, in the synthetic workload (default: 143534)")
    simulate.add_argument("--dim", type=integer(1, MAX_DIM), default=18, help="floats per model row (embedding width)")
    simulate.add_argument("--rounds", type=integer(1, 100_000), default=None, help="training rounds (default: 8)")
    simulate.add_argument("--dropout", type=fraction(MAX_DROPOUT), default=None,
                          help=f"fraction of clients that drop each round, in [0, {MAX_DROPOUT}]: half before the set "
                          "union, half before the upload (default: 0.1)")
    simulate.add_argument("--seed", type=integer(0, (1 << 32) - 1), default=0,
                          help="seeds the whole run: the workload, the initial model, who drops, and every client's "
                          "protocol randomness (keys, masks, randomized-response coins), so a run repeats exactly; "
                          "a simulation's coins are therefore not secret")
    simulate.add_argument("--dataset", choices=["synthetic", "movielens-100k"], default=None,
                          help="the workload (default: synthetic, a seeded Taobao-like click data set)")
    simulate.add_argument("--data-path", default=None, metavar="DIR", help="folder holding MovieLens-100K's u.data")
    simulate.add_argument("--out", default=None, metavar="DIR",
                          help="folder for report.json, every client's ledger and memo (kept across runs: a re-run "
                          "continues them, the model restarts), and the plots auc.png, epsilon.png")
    simulate.add_argument("--epsilon-cap", type=number(0), default=None, metavar="EPS",
                          help="each client's privacy budget: the per-index epsilon its ledger may spend in all; a "
                          "client refuses a round that would pass it (set when the ledger is created; default: no cap)")
    simulate.add_argument("--compare", action="store_true",
                          help="also run plaintext submodel FL and full-model FedAvg with secure aggregation")
    simulate.add_argument("--no-plots", action="store_true",
                          help="with --out: skip auc.png and epsilon.png (they need the plot extra: matplotlib)")
    simulate.add_argument("--psu-first-bound", choices=["previous", "ceiling"], default=None,
                          help="the first set-union table of each round: sized from the previous round's union "
                          "(1.25 x it; the first round, and a union that outgrows it, as below), or always for the "
                          "most ids the clients can hold, clients x items (default: previous)")
    ddp_options.add_round_options(simulate)
    add_executor_arguments(simulate)
    simulate.add_argument("--server-workers", type=integer(1, 64), default=None, metavar="N",
                          help="processes of this machine for the server's unmasking (they receive the rebuilt "
                          "secrets; default 1: the server's own thread)")
    simulate.add_argument("--json", action="store_true", help="the report as one JSON object on stdout")
    simulate.add_argument("--quiet", action="store_true",
                          help="no progress or status lines on stderr (warnings and errors still go there)")
    _add_rr_arguments(simulate, default="--cpp 2")
    simulate.set_defaults(run=_simulate)
