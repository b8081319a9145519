"""Statistical audit of a randomized-response implementation (Clopper-Pearson lower bound on epsilon).

Run the real randomizer N times on an index the client holds and N times on one it does not; with
one-sided Clopper-Pearson bounds at level ``alpha`` on the four output probabilities,

    epsilon_lb = max{ ln(L(P_in) / U(P_out)), ln(L(1 - P_out) / U(1 - P_in)) }

is, with probability >= 1 - 4 alpha, a lower bound on the true epsilon of one report. The audit flags
``epsilon_lb > claimed``. A second test checks that the empirical yes-rates lie in two-sided
intervals (level 2 alpha each) around the designed p5 / p6, which catches mechanisms with the right
epsilon but the wrong probabilities (e.g. swapped coins). Overall false-alarm rate for a correct
mechanism: at most 8 alpha. An audit shows violations; it cannot certify epsilon.

The incomplete beta function is evaluated with a continued fraction (Lentz) in floating point; the
bounds are statistical, not part of any privacy guarantee. Used by the statistical checks
(``ldp/check_sampler_audit.py``, ``ddp/check_release_audit.py``) and their tests; not part of the
installed package.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["regularized_beta", "beta_quantile", "clopper_pearson", "AuditResult", "audit_counts"]


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            return h
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the CDF of Beta(a, b) at x."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def beta_quantile(q: float, a: float, b: float) -> float:
    """x with I_x(a, b) = q, by bisection."""
    low, high = 0.0, 1.0
    for _ in range(200):
        middle = (low + high) / 2
        if regularized_beta(a, b, middle) < q:
            low = middle
        else:
            high = middle
        if high - low < 1e-16:
            break
    return (low + high) / 2


def clopper_pearson(successes: int, trials: int, alpha: float) -> tuple[float, float]:
    """One-sided (lower, upper) bounds, each holding with probability >= 1 - alpha."""
    if not 0 <= successes <= trials or trials < 1:
        raise ValueError("need 0 <= successes <= trials and trials >= 1")
    lower = 0.0 if successes == 0 else beta_quantile(alpha, successes, trials - successes + 1)
    upper = 1.0 if successes == trials else beta_quantile(1 - alpha, successes + 1, trials - successes)
    return lower, upper


@dataclass(frozen=True)
class AuditResult:
    epsilon_lower_bound: float
    claimed_epsilon: float
    rate_in: float
    rate_out: float
    designed_in: float
    designed_out: float
    rates_consistent: bool
    alpha: float

    @property
    def violation(self) -> bool:
        return self.epsilon_lower_bound > self.claimed_epsilon or not self.rates_consistent

    @property
    def false_alarm_rate(self) -> float:
        return 8 * self.alpha


def _safe_log_ratio(numerator: float, denominator: float) -> float:
    if numerator <= 0:
        return -math.inf
    if denominator <= 0:
        return math.inf
    return math.log(numerator / denominator)


def audit_counts(
    yes_in: int, trials_in: int, yes_out: int, trials_out: int,
    claimed_epsilon: float, designed_in: float, designed_out: float, alpha: float = 1e-6,
) -> AuditResult:
    low_in, up_in = clopper_pearson(yes_in, trials_in, alpha)
    low_out, up_out = clopper_pearson(yes_out, trials_out, alpha)
    epsilon_lb = max(0.0, _safe_log_ratio(low_in, up_out), _safe_log_ratio(1 - up_out, 1 - low_in))
    consistent = low_in <= designed_in <= up_in and low_out <= designed_out <= up_out
    return AuditResult(
        epsilon_lb, claimed_epsilon, yes_in / trials_in, yes_out / trials_out,
        designed_in, designed_out, consistent, alpha,
    )
