"""The randomized-response options shared by ``simulate``, ``bench ldp``, ``bench round`` and ``privacy``."""

from __future__ import annotations

import argparse


def _add_rr_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cpp", type=int, choices=range(1, 6), help="the paper's preset CPP1..CPP5")
    parser.add_argument("--epsilon", type=float, help="target epsilon_inf (symmetric parameters)")
    parser.add_argument("--epsilon-1", type=float, default=None, help="target epsilon for one report (default: --epsilon)")
    for i in range(1, 5):
        parser.add_argument(f"--p{i}", type=str, default=None, help="a probability, e.g. 15/16 or 0.9375")
    parser.add_argument("--allow-insecure", action="store_true", help="accept an infinite epsilon_inf")


def _rr_params(args: argparse.Namespace):
    from ..errors import InvalidParameters
    from ..ldp import RRParameters

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


def _rr_params_or_default(args: argparse.Namespace):
    """``--cpp``/``--epsilon``/``--p1..4`` when given, else CPP2."""
    from ..ldp import RRParameters

    return _rr_params(args) if (args.epsilon is not None or args.p1 is not None) else RRParameters.preset(args.cpp or 2)
