"""Parameters of the double randomized response and their exact privacy maps.

For every index j of the questionnaire (the union U) a client holds a membership bit (j in S).

* permanent response (memoized for the client's lifetime): j in S' with probability p1 if j in S,
  p2 if not;
* instantaneous response (fresh every round): j in S'' with probability p3 if j in S', p4 if not.

Net per report: p5 = P[j in S'' | j in S] = p1 (p3 - p4) + p4 and p6 = P[j in S'' | j not in S] =
p2 (p3 - p4) + p4.

Privacy per index (neighbour relation: add or remove one index of S; each index has its own coins):

* one report: epsilon_1 = ln max{p5/p6, (1-p6)/(1-p5)};
* any number of reports over one memo: at most epsilon_inf = ln max{p1/p2, (1-p2)/(1-p1)};
* exactly T reports over one memo: epsilon_T = max over the all-ones and all-zeros report histories of
  |ln P[history | in] / P[history | out]| (the likelihood ratio of a history with k ones is monotone
  in k, so the extremes bound every history); epsilon_1 <= epsilon_T <= epsilon_inf, and T * epsilon_1 is
  NOT an upper bound when p2 != 1 - p1 (the reports share the permanent coin).

Other relations scale these: replacing one index by another changes two coordinates (2x); two sets of
at most m indices differ in at most 2m coordinates (2m x). Conventions: 0/0 counts as ratio 1;
x/0 with x > 0 gives infinity. Logarithms of exact rational ratios are rounded up by two ulps, so a
reported epsilon is never below the true one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction

from ..errors import InvalidParameters
from ..hazmat.sampling import as_probability

__all__ = [
    "NeighbourRelation",
    "RRParameters",
    "CPP_PRESETS",
    "log_ratio_up",
    "epsilon_after_reports",
    "epsilon_after_reports_by_enumeration",
    "scale_for_relation",
    "theorem_5_5_probabilities",
]

_ONE = Fraction(1)
_EPS = 2.0**-52
TARGET_DENOMINATOR = 1 << 32


class NeighbourRelation(str, Enum):
    ADD_REMOVE_ONE = "add-remove-one-index"
    REPLACE_ONE = "replace-one-index"
    WHOLE_SET = "whole-set"


def log_ratio_up(numerator: Fraction, denominator: Fraction) -> float:
    """|ln(numerator / denominator)| rounded up; 0/0 -> 0, x/0 -> inf."""
    if numerator == 0 and denominator == 0:
        return 0.0
    if numerator == 0 or denominator == 0:
        return math.inf
    ratio = numerator / denominator
    if ratio < 1:
        ratio = 1 / ratio
    if ratio == 1:
        return 0.0
    log_numerator, log_denominator = math.log(ratio.numerator), math.log(ratio.denominator)
    # Each log is within an ulp or two of exact; the margin covers both and the subtraction.
    margin = 8 * _EPS * (abs(log_numerator) + abs(log_denominator))
    return max(0.0, math.nextafter(log_numerator - log_denominator + margin, math.inf))


def _max_log_ratio(pairs: list[tuple[Fraction, Fraction]]) -> float:
    return max(log_ratio_up(a, b) for a, b in pairs)


def scale_for_relation(epsilon: float, relation: NeighbourRelation, set_size: int | None = None) -> float:
    """Per-index epsilon scaled to a neighbour relation (see the module docstring)."""
    relation = NeighbourRelation(relation)
    if relation is NeighbourRelation.ADD_REMOVE_ONE:
        return epsilon
    if relation is NeighbourRelation.REPLACE_ONE:
        return 2 * epsilon
    if set_size is None or set_size < 0:
        raise InvalidParameters("the whole-set relation needs the public bound m on the set size")
    return 2 * set_size * epsilon


@dataclass(frozen=True)
class RRParameters:
    """p1..p4 as exact fractions. ``allow_insecure`` admits settings with infinite epsilon (CPP1)."""

    p1: Fraction
    p2: Fraction
    p3: Fraction
    p4: Fraction
    allow_insecure: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("p1", "p2", "p3", "p4"):
            object.__setattr__(self, name, as_probability(getattr(self, name), name))
        if self.p2 > self.p1:
            raise InvalidParameters(f"p2 ({self.p2}) > p1 ({self.p1}) only relabels the permanent answers; swap them")
        if self.p4 > self.p3:
            raise InvalidParameters(f"p4 ({self.p4}) > p3 ({self.p3}) only relabels the reports; swap them")
        if not self.allow_insecure and math.isinf(self.epsilon_inf):
            raise InvalidParameters(
                "these probabilities give epsilon_inf = infinity (a client's answers can reveal its set); "
                "pass allow_insecure=True (--allow-insecure on the command line) to accept that"
            )

    @classmethod
    def from_epsilons(cls, epsilon_inf: float, epsilon_1: float | None = None) -> RRParameters:
        """Symmetric parameters (p2 = 1 - p1, p4 = 1 - p3) meeting the targets, rounded toward more noise.

        p1 = e^a / (1 + e^a) with a = epsilon_inf, and p3 = (1 + r) / 2 with r = tanh(epsilon_1/2) /
        tanh(epsilon_inf/2) (so that tanh(epsilon_1/2) = tanh(epsilon_inf/2) tanh(eps_IRR/2)). The
        realised probabilities have denominator 2^32 and achieved epsilons never exceed the targets.
        """
        for name, value in (("epsilon_inf", epsilon_inf), ("epsilon_1", epsilon_1)):
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise InvalidParameters(f"{name} must be a finite number >= 0, got {value!r}")
        if epsilon_1 is None:
            epsilon_1 = epsilon_inf
        if epsilon_1 > epsilon_inf:
            raise InvalidParameters("epsilon_1 cannot exceed epsilon_inf (one report reveals at most the memo)")
        if epsilon_inf == 0:
            return cls(_ONE / 2, _ONE / 2, _ONE, _ONE)
        p1 = _round_down(math.exp(epsilon_inf) / (1 + math.exp(epsilon_inf)))
        if 1 - p1 < Fraction(1, TARGET_DENOMINATOR):
            raise InvalidParameters(
                f"epsilon_inf={epsilon_inf} is beyond the 2^-32 resolution of target-derived probabilities; "
                "give the probabilities as fractions instead"
            )
        r = 0.0 if epsilon_1 == 0 else math.tanh(epsilon_1 / 2) / math.tanh(epsilon_inf / 2)
        p3 = _round_down((1 + min(r, 1.0)) / 2)
        for _ in range(64):  # nudge toward more noise until both targets hold exactly
            params = cls(p1, 1 - p1, p3, 1 - p3)
            if params.epsilon_inf > epsilon_inf:
                p1 -= Fraction(1, TARGET_DENOMINATOR)
            elif params.epsilon_1 > epsilon_1:
                p3 -= Fraction(1, TARGET_DENOMINATOR)
            else:
                return params
        raise InvalidParameters(f"cannot meet epsilon_inf={epsilon_inf}, epsilon_1={epsilon_1}")

    @classmethod
    def preset(cls, name: str | int) -> RRParameters:
        key = f"CPP{name}" if isinstance(name, int) or str(name).isdigit() else str(name).upper()
        if key not in CPP_PRESETS:
            raise InvalidParameters(f"unknown preset {name!r}; choose one of {', '.join(CPP_PRESETS)}")
        p1, p2, p3, p4 = CPP_PRESETS[key]
        return cls(p1, p2, p3, p4, allow_insecure=key == "CPP1")

    @property
    def p5(self) -> Fraction:
        return self.p1 * (self.p3 - self.p4) + self.p4

    @property
    def p6(self) -> Fraction:
        return self.p2 * (self.p3 - self.p4) + self.p4

    @property
    def epsilon_inf(self) -> float:
        return _max_log_ratio([(self.p1, self.p2), (1 - self.p2, 1 - self.p1)])

    @property
    def epsilon_1(self) -> float:
        return _max_log_ratio([(self.p5, self.p6), (1 - self.p6, 1 - self.p5)])

    def epsilon_after(self, reports: int) -> float:
        return epsilon_after_reports(self, reports)

    def as_strings(self) -> dict[str, str]:
        return {name: str(getattr(self, name)) for name in ("p1", "p2", "p3", "p4")}


def _round_down(value: float) -> Fraction:
    return Fraction(math.floor(value * TARGET_DENOMINATOR), TARGET_DENOMINATOR)


def epsilon_after_reports(params: RRParameters, reports: int) -> float:
    """Exact pure epsilon of ``reports`` instantaneous reports over one memoized permanent answer."""
    if reports < 0:
        raise InvalidParameters("reports must be >= 0")
    if reports == 0:
        return 0.0
    if reports > 256:  # converged to epsilon_inf within float precision for any useful parameters
        exact = _epsilon_reports_log_space(params, reports)
        return min(exact, params.epsilon_inf)
    p1, p2, p3, p4 = params.p1, params.p2, params.p3, params.p4
    ones_in = p1 * p3**reports + (1 - p1) * p4**reports
    ones_out = p2 * p3**reports + (1 - p2) * p4**reports
    zeros_in = p1 * (1 - p3) ** reports + (1 - p1) * (1 - p4) ** reports
    zeros_out = p2 * (1 - p3) ** reports + (1 - p2) * (1 - p4) ** reports
    # Both are upper bounds of the exact values and epsilon_T <= epsilon_inf exactly: keep the tighter.
    return min(_max_log_ratio([(ones_in, ones_out), (zeros_in, zeros_out)]), params.epsilon_inf)


def _epsilon_reports_log_space(params: RRParameters, reports: int) -> float:
    def log_mix(weight: Fraction, a: Fraction, b: Fraction) -> float:
        terms = []
        if weight > 0 and a > 0:
            terms.append(math.log(weight) + reports * math.log(a))
        if weight < 1 and b > 0:
            terms.append(math.log(1 - weight) + reports * math.log(b))
        if not terms:
            return -math.inf
        top = max(terms)
        return top + math.log(sum(math.exp(t - top) for t in terms))

    best = 0.0
    for a, b in ((params.p3, params.p4), (1 - params.p3, 1 - params.p4)):
        inside, outside = log_mix(params.p1, a, b), log_mix(params.p2, a, b)
        if inside == outside == -math.inf:
            continue
        if -math.inf in (inside, outside):
            return math.inf
        # Both logs are large (about reports * |log a|) and nearly cancel: bound the float error
        # by a relative margin on their magnitude, so the result is never below the exact value.
        margin = 64 * _EPS * (abs(inside) + abs(outside) + 1.0)
        best = max(best, abs(inside - outside) + margin)
    return math.nextafter(best, math.inf)


def epsilon_after_reports_by_enumeration(params: RRParameters, reports: int) -> float:
    """The same quantity computed independently: max over every count k of ones in the history."""
    if reports == 0:
        return 0.0
    p1, p2, p3, p4 = params.p1, params.p2, params.p3, params.p4
    pairs = []
    for ones in range(reports + 1):
        zeros = reports - ones
        from_memo_one = p3**ones * (1 - p3) ** zeros
        from_memo_zero = p4**ones * (1 - p4) ** zeros
        pairs.append((p1 * from_memo_one + (1 - p1) * from_memo_zero, p2 * from_memo_one + (1 - p2) * from_memo_zero))
    return _max_log_ratio(pairs)


def theorem_5_5_probabilities(params: RRParameters, holders: int, non_holders: int) -> tuple[Fraction, Fraction]:
    """(p7, p8) of the paper's Theorem 5.5 for one index held by ``holders`` of the clients.

    p7: exactly one holder chose the index and no non-holder did (its row update is exposed alone);
    p8: no holder chose it and at least one non-holder did (the zero aggregate count exposes them).
    For simulations only: in production the server does not know ``holders``.
    """
    if holders < 0 or non_holders < 0:
        raise InvalidParameters("counts must be >= 0")
    p5, p6 = params.p5, params.p6
    p7 = holders * p5 * (1 - p5) ** max(holders - 1, 0) * (1 - p6) ** non_holders if holders else Fraction(0)
    p8 = (1 - p5) ** holders * (1 - (1 - p6) ** non_holders)
    return p7, p8


CPP_PRESETS: dict[str, tuple[Fraction, Fraction, Fraction, Fraction]] = {
    "CPP1": (_ONE, Fraction(0), _ONE, Fraction(0)),
    "CPP2": (Fraction(15, 16), Fraction(1, 16), Fraction(15, 16), Fraction(1, 16)),
    "CPP3": (Fraction(7, 8), Fraction(1, 8), Fraction(7, 8), Fraction(1, 8)),
    "CPP4": (Fraction(3, 4), Fraction(1, 4), Fraction(3, 4), Fraction(1, 4)),
    "CPP5": (_ONE, _ONE, _ONE, _ONE),
}
