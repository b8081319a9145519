"""The command line's distributed-DP options, as functions each verb calls in one line (no I/O here).

``add_round_options`` (simulate, bench round): ``--ddp-epsilon`` (per round, for every row sum),
``--delta``, ``--ddp-clip`` (L2 clip of a client's whole upload, counts included), ``--ddp-sensitivity``
(the clip in integer levels); ``round_fields`` turns them into ``RoundSettings`` fields.
``add_privacy_options`` / ``privacy_fields``: ``fedprivacy privacy --ddp-noise-multiplier z [--reports
T] [--delta]``. ``add_bench_options`` / ``run_bench``: ``fedprivacy bench ddp``. ``report_fields``,
``privacy_note`` and ``audit_note``: what simulate's report, its comparison table and audit's text add;
``with_client_ddp``: the simulated clients' own DDP policy (their reports at ``--delta``).
"""

from __future__ import annotations

import argparse

from .params import DDPSettings, reported_epsilon

__all__ = [
    "add_round_options",
    "round_fields",
    "report_fields",
    "privacy_note",
    "add_privacy_options",
    "privacy_fields",
    "add_bench_options",
    "run_bench",
    "audit_note",
    "with_client_ddp",
]


def add_round_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ddp-epsilon", type=float, default=None,
                        help="distributed DP for the updates: (epsilon, --delta) per round for every row sum")
    parser.add_argument("--delta", type=float, default=1e-6, help="delta of --ddp-epsilon")
    parser.add_argument("--ddp-clip", type=float, default=8.0, help="L2 clip of a client's whole upload (counts included)")
    parser.add_argument("--ddp-sensitivity", type=int, default=1 << 12, help="the L2 clip in integer levels")


def round_fields(args: argparse.Namespace) -> dict:
    """RoundSettings fields for ``--ddp-epsilon`` (none without it): DDP settings, weights 0/1 (max_samples 1)."""
    if getattr(args, "ddp_epsilon", None) is None:
        return {}
    return {"ddp": DDPSettings.for_epsilon(args.ddp_epsilon, args.delta, args.ddp_clip, args.ddp_sensitivity), "max_samples": 1}


def report_fields(args: argparse.Namespace, ddp: DDPSettings | None) -> dict:
    """The simulation report's ``ddp`` entry."""
    if ddp is None:
        return {"ddp": None}
    return {"ddp": {"epsilon_per_round": args.ddp_epsilon, "delta": args.delta, "l2_clip": ddp.l2_clip,
                    "sensitivity": ddp.sensitivity, "noise_multiplier": ddp.noise_multiplier}}


def privacy_note(report: dict) -> str:
    """What the comparison table's privacy column adds under DDP."""
    ddp = report.get("ddp")
    if ddp is None:
        return ""
    return f" under DDP (eps {ddp['epsilon_per_round']:g} per round, delta {ddp['delta']:g})"


def add_privacy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ddp-noise-multiplier", type=float, default=None,
                        help="also: the update epsilon of distributed DP at this noise multiplier (--reports rounds)")
    parser.add_argument("--delta", type=float, default=1e-6, help="delta of the update epsilon")


def privacy_fields(args: argparse.Namespace) -> dict:
    """``fedprivacy privacy``'s update lines (none without ``--ddp-noise-multiplier``)."""
    if getattr(args, "ddp_noise_multiplier", None) is None:
        return {}
    rho = 1.0 / (2.0 * args.ddp_noise_multiplier**2)
    rounds = args.reports or 1
    return {"update_rho_per_round": rho, "update_delta": args.delta, "update_rounds": rounds,
            "update_epsilon": reported_epsilon(rho * rounds, args.delta)}


def add_bench_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", type=int, default=10, help="standard deviation (the variance is its square)")
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--opendp-count", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)


def run_bench(args: argparse.Namespace) -> dict:
    from ..bench.ddp import run_ddp_bench

    return run_ddp_bench(args.scale, args.count, args.opendp_count, args.repeats)


def audit_note(client: dict) -> str:
    """What ``fedprivacy audit`` adds to a client's line: its update epsilon, if it released updates."""
    if not client.get("update_releases"):
        return ""
    return (f"; updates: epsilon {client['update_epsilon']:.4f} at delta {client['update_delta']:g} "
            f"over {client['update_releases']} releases")


def with_client_ddp(args: argparse.Namespace, policy=None):  # noqa: ANN001, ANN201 -- ClientPolicy | None
    """The simulated clients' policy with their own DDP requirements: reports at ``--delta``.

    None (the default policy) stays None without ``--ddp-epsilon``."""
    if getattr(args, "ddp_epsilon", None) is None:
        return policy
    from ..policy import ClientPolicy
    from .params import DDPPolicy

    base = ClientPolicy() if policy is None else policy
    return base.replace(ddp=DDPPolicy(delta=args.delta))
