"""``fedprivacy privacy``: p5, p6 and the epsilons of randomized-response parameters."""

from __future__ import annotations

import argparse
import math

from .checks import integer
from .ddp import add_privacy_options, privacy_fields
from .output import _emit
from .rr import _add_rr_arguments, _rr_params


def _round_up(value: float, digits: int = 2) -> float:
    """Two decimals, never below the value (a privacy figure must not be understated)."""
    if math.isinf(value):
        return value
    scale = 10**digits
    return math.ceil(value * scale - 1e-9) / scale


def _finite(value: float) -> float | str:
    return "inf" if value == float("inf") else value


def _privacy(args: argparse.Namespace) -> int:
    from ..ldp import scale_for_relation, theorem_5_5_probabilities
    from ..ldp.params import NeighbourRelation

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
    result["epsilon_inf_replace_one"] = _finite(scale_for_relation(params.epsilon_inf, NeighbourRelation.REPLACE_ONE))
    if args.set_size is not None:
        result["epsilon_inf_whole_set"] = _finite(scale_for_relation(params.epsilon_inf, NeighbourRelation.WHOLE_SET, args.set_size))
    result.update(privacy_fields(args))
    if args.clients is not None:
        p7, p8 = theorem_5_5_probabilities(params, 1, args.clients - 1)
        result["p7_one_holder"] = float(p7)
        result["p8_one_holder"] = float(p8)
    _emit(result, args.json)
    return 0


def register(commands) -> None:
    privacy = commands.add_parser(
        "privacy", help="p5, p6 and the epsilons of randomized-response parameters",
        description="The net probabilities p5 = P[reported | held], p6 = P[reported | not held] and the per-index "
        "epsilons of randomized-response parameters: epsilon_1 for one report, epsilon_inf over any number of "
        "reports over one permanent answer (rounded up, never understated). Infinite values print as \"inf\".",
    )
    _add_rr_arguments(privacy)
    privacy.add_argument("--reports", type=integer(0, 1 << 32), default=None, metavar="T",
                         help="also: the exact epsilon after T reports over one permanent answer")
    privacy.add_argument("--set-size", type=integer(0, 1 << 61), default=None, metavar="M",
                         help="also: epsilon for whole index sets of at most M ids (2 M epsilon_inf)")
    privacy.add_argument("--clients", type=integer(1, 1 << 32), default=None, metavar="N",
                         help="also: Theorem 5.5's p7, p8 (an id held by one of N clients)")
    add_privacy_options(privacy)
    privacy.add_argument("--json", action="store_true", help="the result as one JSON object on stdout")
    privacy.set_defaults(run=_privacy)
