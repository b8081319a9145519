"""The randomized-response options shared by ``simulate``, ``bench ldp``, ``bench round`` and
``privacy``; parsed by the library's :mod:`fedprivacy.client_settings`, as the Flower adapter parses
its node config (:func:`client_settings` hands it the options by their plain names)."""

from __future__ import annotations

import argparse
import math
import sys

from ..client_settings import CLI_SETTINGS, RR_SETTINGS, rr_parameters_from_client_settings
from ..ldp.settings import MAX_TARGET_EPSILON
from .checks import number


def _add_rr_arguments(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """``default``: what applies when none is given (None: one of them is required)."""
    group = parser.add_argument_group(
        "randomized-response parameters",
        "give one of --cpp, --epsilon [--epsilon-1], or --p1..--p4"
        + (f" (default: {default})" if default else " (required)"),
    )
    group.add_argument("--cpp", type=int, choices=range(1, 6), metavar="{1..5}",
                       help="the paper's preset CPP1..CPP5 (CPP1 is no protection: it needs --allow-insecure)")
    group.add_argument("--epsilon", type=number(0, MAX_TARGET_EPSILON), metavar="EPS",
                       help=f"target epsilon_inf per index, over any number of reports, in [0, {MAX_TARGET_EPSILON:.2f}] "
                       "(symmetric parameters; the realised value is never above the target)")
    group.add_argument("--epsilon-1", type=number(0, MAX_TARGET_EPSILON), metavar="EPS_1",
                       help="target epsilon per index for one report, at most --epsilon (default: --epsilon)")
    meanings = ("P[kept in the permanent answer | held], e.g. 15/16 or 0.9375",
                "P[in the permanent answer | not held], e.g. 1/16", "P[reported | in the permanent answer], e.g. 15/16",
                "P[reported | not in the permanent answer], e.g. 1/16")
    for i, meaning in enumerate(meanings, start=1):
        group.add_argument(f"--p{i}", type=str, metavar="P", help=meaning)
    group.add_argument("--allow-insecure", action="store_true",
                       help="accept parameters with infinite epsilon_inf (such as --cpp 1): the server then learns "
                       "the clients' real index sets")


def client_settings(args: argparse.Namespace) -> dict[str, object]:
    """The client's own settings among the options, keyed by their plain names (``epsilon-cap`` for
    ``--epsilon-cap``), for :mod:`fedprivacy.client_settings`; options not given are left out."""
    names = (*RR_SETTINGS, "allow_insecure", "epsilon_cap")
    return {name.replace("_", "-"): getattr(args, name.replace("-", "_")) for name in names
            if getattr(args, name.replace("-", "_"), None) not in (None, False)}


def _rr_params(args: argparse.Namespace, default=None):
    """The parameters the options name; ``default`` when none is given (None: an error)."""
    from ..ldp import RRParameters

    params = rr_parameters_from_client_settings(
        client_settings(args), CLI_SETTINGS, allow_insecure=args.allow_insecure,
        default=None if default is None else RRParameters.preset(default), required=True,
    )
    assert params is not None  # required: an error rather than None
    if math.isinf(params.epsilon_inf):
        print("fedprivacy: WARNING: --allow-insecure: epsilon_inf is infinite; the randomized index sets are NOT "
              "protected and the server learns every client's real index set", file=sys.stderr)
    elif args.epsilon is not None and params.epsilon_inf < 0.99 * args.epsilon:
        print(f"fedprivacy: note: --epsilon {args.epsilon:g} is realised as epsilon_inf {params.epsilon_inf:.4g} "
              "(probabilities with denominator 2^32, rounded toward more noise)", file=sys.stderr)
    return params


def _rr_params_or_default(args: argparse.Namespace):
    """``--cpp``/``--epsilon``/``--p1..4`` when given, else CPP2."""
    return _rr_params(args, default=2)


def _rr_given(args: argparse.Namespace) -> list[str]:
    """The randomized-response attribute names set on the command line."""
    return [n for n in ("cpp", "epsilon", "epsilon_1", "p1", "p2", "p3", "p4", "allow_insecure")
            if getattr(args, n, None) not in (None, False)]
