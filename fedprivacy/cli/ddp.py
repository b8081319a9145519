"""The command line's distributed-DP options, as functions each verb calls in one line.

``add_round_options`` (simulate, bench round): ``--ddp-epsilon`` (per round, for every row sum),
``--delta``, ``--ddp-clip`` (L2 clip of a client's whole upload, counts included), ``--ddp-sensitivity``
(the clip in integer levels); ``round_fields`` turns them into ``RoundSettings`` fields.
``add_privacy_options`` / ``privacy_fields``: ``fedprivacy privacy --ddp-noise-multiplier z [--reports
T] [--delta]``. ``add_bench_options``: ``fedprivacy bench ddp``'s. ``report_fields``,
``privacy_note`` and ``audit_note``: what simulate's report, its comparison table and audit's text add;
``with_client_ddp``: the simulated clients' own DDP policy (their reports at ``--delta``).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TypeVar

from ..ddp.params import DDPSettings, reported_epsilon
from ..errors import InvalidParameters
from .checks import UsageError, check, integer, number

if TYPE_CHECKING:
    from ..policy import ClientPolicy

_T = TypeVar("_T")

__all__ = [
    "add_round_options",
    "round_fields",
    "report_fields",
    "privacy_note",
    "add_privacy_options",
    "privacy_fields",
    "add_bench_options",
    "audit_note",
    "with_client_ddp",
]


DEFAULT_DELTA = 1e-6
DEFAULT_CLIP = 8.0
DEFAULT_SENSITIVITY = 1 << 12
ROUND_OPTIONS = ("ddp_epsilon", "delta", "ddp_clip", "ddp_sensitivity")


def add_round_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ddp-epsilon", type=number(0, 1000, low_open=True), default=None, metavar="EPS",
                        help="distributed DP for the updates: (EPS, --delta) per round for every row sum "
                             "(default: off; the updates are then protected by secure aggregation alone)")
    parser.add_argument("--delta", type=number(0, 1, low_open=True, high_open=True), default=None,
                        help=f"delta of --ddp-epsilon, in (0, 1) (default: {DEFAULT_DELTA:g})")
    parser.add_argument("--ddp-clip", type=number(0, 1e6, low_open=True), default=None,
                        help=f"L2 clip of a client's whole upload, counts included, in model units (default: {DEFAULT_CLIP:g})")
    parser.add_argument("--ddp-sensitivity", type=integer(1, 1 << 24), default=None,
                        help=f"the L2 clip in integer levels after quantization (default: {DEFAULT_SENSITIVITY})")


def check_round_options(args: argparse.Namespace) -> None:
    """--delta, --ddp-clip and --ddp-sensitivity only mean something with --ddp-epsilon."""
    if getattr(args, "ddp_epsilon", None) is None:
        for name in ROUND_OPTIONS[1:]:
            check(getattr(args, name, None) is None, f"--{name.replace('_', '-')} needs --ddp-epsilon")


def round_fields(args: argparse.Namespace) -> dict:
    """RoundSettings fields for ``--ddp-epsilon`` (none without it): DDP settings, weights 0/1 (max_samples 1)."""
    check_round_options(args)
    if getattr(args, "ddp_epsilon", None) is None:
        return {}
    try:
        ddp = DDPSettings.for_epsilon(args.ddp_epsilon, _delta(args), _or(args.ddp_clip, DEFAULT_CLIP),
                                      _or(args.ddp_sensitivity, DEFAULT_SENSITIVITY))
    except InvalidParameters as exc:
        raise UsageError(f"--ddp-epsilon {args.ddp_epsilon:g}: {exc}") from None
    return {"ddp": ddp, "max_samples": 1}


def _or(value: _T | None, default: _T) -> _T:
    return default if value is None else value


def _delta(args: argparse.Namespace) -> float:
    return _or(getattr(args, "delta", None), DEFAULT_DELTA)


def report_fields(args: argparse.Namespace, ddp: DDPSettings | None) -> dict:
    """The simulation report's ``ddp`` entry."""
    if ddp is None:
        return {"ddp": None}
    return {"ddp": {"epsilon_per_round": args.ddp_epsilon, "delta": _delta(args), "l2_clip": ddp.l2_clip,
                    "sensitivity": ddp.sensitivity, "noise_multiplier": ddp.noise_multiplier}}


def privacy_note(report: dict) -> str:
    """What the comparison table's privacy column adds under DDP."""
    ddp = report.get("ddp")
    if ddp is None:
        return ""
    return f" under DDP (eps {ddp['epsilon_per_round']:g} per round, delta {ddp['delta']:g})"


def add_privacy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ddp-noise-multiplier", type=number(0, 1e6, low_open=True), default=None, metavar="Z",
                        help="also: the update epsilon of distributed DP at noise multiplier Z (over --reports rounds)")
    parser.add_argument("--delta", type=number(0, 1, low_open=True, high_open=True), default=None,
                        help=f"delta of the update epsilon, in (0, 1) (default: {DEFAULT_DELTA:g})")


def privacy_fields(args: argparse.Namespace) -> dict:
    """``fedprivacy privacy``'s update lines (none without ``--ddp-noise-multiplier``)."""
    if getattr(args, "ddp_noise_multiplier", None) is None:
        check(getattr(args, "delta", None) is None, "--delta needs --ddp-noise-multiplier")
        return {}
    rho = 1.0 / (2.0 * args.ddp_noise_multiplier**2)
    rounds = args.reports or 1
    return {"update_rho_per_round": rho, "update_delta": _delta(args), "update_rounds": rounds,
            "update_epsilon": reported_epsilon(rho * rounds, _delta(args))}


def add_bench_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", type=integer(1, 1 << 20), default=10,
                        help="the noise's standard deviation in integer levels (the variance is its square)")
    parser.add_argument("--count", type=integer(1, 1 << 28), default=1_000_000,
                        help="samples per timed draw of our sampler")
    parser.add_argument("--opendp-count", type=integer(0, 1 << 24), default=100_000,
                        help="samples per timed draw of OpenDP's sampler (0: skip it; it needs opendp installed)")
    parser.add_argument("--repeats", type=integer(1, 1000), default=5, help="timed draws; the median is reported")


def audit_note(client: dict) -> str:
    """What ``fedprivacy audit`` adds to a client's line: its update epsilon, if it released updates."""
    if not client.get("update_releases"):
        return ""
    return (f"; updates: epsilon {client['update_epsilon']:.4f} at delta {client['update_delta']:g} "
            f"over {client['update_releases']} releases")


def with_client_ddp(args: argparse.Namespace, policy: ClientPolicy | None = None) -> ClientPolicy | None:
    """The simulated clients' policy with their own DDP requirements: reports at ``--delta``.

    None (the default policy) stays None without ``--ddp-epsilon``."""
    if getattr(args, "ddp_epsilon", None) is None:
        return policy
    from ..ddp.params import DDPPolicy
    from ..policy import ClientPolicy

    base = ClientPolicy() if policy is None else policy
    return base.replace(ddp=DDPPolicy(delta=_delta(args)))
