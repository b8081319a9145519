"""Distributed discrete Gaussian parameters, per-row calibration and zCDP accounting (pure arithmetic).

See ``protocols/ddp/spec.md`` for the threat model and the neighbour relation (one client's whole
upload in one round: its planned rows, its dense part and its counts, replaced by any other upload
of L2 norm at most ``sensitivity`` in integer units).

* :class:`DDPSettings` -- the public part the server proposes: the L2 clip in model units, the
  integer L2 bound ``sensitivity`` (so the quantization scale is sensitivity / l2_clip) and the noise
  multiplier z (every row sum must carry discrete Gaussian noise of variance at least
  (z * sensitivity)^2).
* :func:`noise_floor` -- the fewest noise contributors a client may count on for a row: its policy's
  ``min_choosers`` minus the dropouts the secure sum tolerates after the plan, minus the clients it
  assumes collude with the server, never below 1.
* :func:`client_variance` -- each client's integer variance S = ceil(z^2 sensitivity^2 / floor):
  the sum over any k >= floor contributors has variance k S >= (z sensitivity)^2 -- more choosers,
  more noise, never less.
* :func:`zcdp_rho` -- Kairouz, Liu and Steinke (ICML 2021, Theorem 1): the sum of ``contributors``
  independent N_Z(0, S) per coordinate, ``coordinates`` coordinates, sensitivity Delta, is
  (eps^2 / 2)-zCDP with eps = min(sqrt(Delta^2/(n S) + tau d / 2), Delta/sqrt(n S) + tau sqrt(d)),
  tau = 10 sum_{k=1}^{n-1} exp(-2 pi^2 S k / (k + 1)). Rows with more contributors are a
  post-processing (extra independent noise) of the floor's release, so the floor's rho bounds them.
* :func:`epsilon_from_rho` -- eps = rho + 2 sqrt(rho ln(1/delta)) (Bun and Steinke, TCC 2016,
  Proposition 1.3), rounded up; zCDP composes by adding rho over rounds.

What leaks: these are public numbers; nothing here sees data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from ..errors import InvalidParameters
from ..hazmat.discrete_gaussian import MAX_VARIANCE

__all__ = [
    "DDPSettings",
    "DDPPolicy",
    "noise_floor",
    "client_variance",
    "kls_tau",
    "zcdp_rho",
    "release_rho",
    "epsilon_from_rho",
    "reported_epsilon",
    "rho_for_epsilon",
    "noise_multiplier_for",
    "MAX_SENSITIVITY",
]

MAX_SENSITIVITY = 1 << 24
_ROUND_UP = 1 + 1e-12


@dataclass(frozen=True)
class DDPSettings:
    """Public distributed-DP settings of a round (the server proposes, each client may add noise)."""

    l2_clip: float  # L2 bound, model units, over everything one client uploads (weights normalised to [0, 1])
    noise_multiplier: float  # every row sum carries noise of standard deviation >= noise_multiplier * sensitivity
    sensitivity: int = 1 << 12  # the same bound in integer units: scale = sensitivity / l2_clip

    def __post_init__(self) -> None:
        for name in ("l2_clip", "noise_multiplier"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise InvalidParameters(f"{name} must be a positive finite number, got {value!r}")
        if isinstance(self.sensitivity, bool) or not isinstance(self.sensitivity, int) or not 1 <= self.sensitivity <= MAX_SENSITIVITY:
            raise InvalidParameters(f"sensitivity must be an integer in [1, 2^24], got {self.sensitivity!r}")

    @property
    def scale(self) -> float:
        """Integer levels per model unit."""
        return self.sensitivity / float(self.l2_clip)

    @classmethod
    def for_epsilon(cls, epsilon: float, delta: float, l2_clip: float, sensitivity: int = 1 << 12) -> DDPSettings:
        """Settings whose per-round release is (epsilon, delta)-DP (via zCDP, tau included for d <= 2^32)."""
        return cls(l2_clip, noise_multiplier_for(epsilon, delta), sensitivity)


def noise_floor(min_choosers: int, clients: int, threshold: int, colluders: int = 0) -> int:
    """Noise contributors a row is sure to have: min_choosers - (clients - threshold) - colluders, at least 1.

    ``clients - threshold`` parties may drop after the plan and before (or instead of) their upload,
    and each may be a chooser of the row; ``colluders`` clients may send no noise at all.
    """
    for name, value in (("min_choosers", min_choosers), ("clients", clients), ("threshold", threshold), ("colluders", colluders)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidParameters(f"{name} must be an integer >= 0")
    if not 1 <= threshold <= clients:
        raise InvalidParameters("threshold must be in [1, clients]")
    return max(1, min_choosers - (clients - threshold) - colluders)


def client_variance(settings: DDPSettings, floor: int, minimum_multiplier: float = 0.0) -> int:
    """One client's integer variance: ceil(z^2 sensitivity^2 / floor), z = max(proposed, the client's minimum).

    Computed exactly from the floats' binary values (``Fraction``), rounded up: never less noise
    than the target. :class:`InvalidParameters` when it exceeds the sampler's 2^30.
    """
    if isinstance(floor, bool) or not isinstance(floor, int) or floor < 1:
        raise InvalidParameters("floor must be a positive integer")
    z = Fraction(max(float(settings.noise_multiplier), float(minimum_multiplier)))
    target = z * z * settings.sensitivity * settings.sensitivity / floor
    variance = math.ceil(target)
    if variance > MAX_VARIANCE:
        raise InvalidParameters(
            f"per-client noise variance {variance} exceeds 2^30: lower the sensitivity (integer L2 bound) "
            f"{settings.sensitivity} or the noise multiplier"
        )
    return max(1, variance)


def kls_tau(variance: int, contributors: int) -> float:
    """tau = 10 sum_{k=1}^{n-1} exp(-2 pi^2 S k / (k + 1)), rounded up (0 for one contributor)."""
    if contributors <= 1:
        return 0.0
    # Each term is at most exp(-pi^2 S) (k / (k + 1) >= 1/2); the bound (n - 1) exp(-pi^2 S) is used
    # when n is large, which is never smaller than the sum.
    if contributors > 4096:
        return 10.0 * (contributors - 1) * math.exp(-math.pi**2 * variance) * _ROUND_UP
    total = math.fsum(math.exp(-2 * math.pi**2 * variance * k / (k + 1)) for k in range(1, contributors))
    return 10.0 * total * _ROUND_UP


def zcdp_rho(sensitivity: int, variance: int, contributors: int, coordinates: int) -> float:
    """rho of the sum over ``contributors`` clients, each adding N_Z(0, variance) to ``coordinates`` coordinates."""
    return release_rho(sensitivity, [(variance, contributors, coordinates)])


def release_rho(sensitivity: int, parts: list[tuple[int, int, int]]) -> float:
    """rho of a release whose coordinates come in parts (variance S, contributors n, coordinates d).

    Per coordinate the Renyi divergence is at most alpha v_c^2 / (2 n_c S_c) + tau_c (KLS); summed,
    at most alpha Delta^2 / (2 min n S) + max tau * d, which gives the formula of :func:`zcdp_rho`
    with min(n S) and max(tau) over the parts and d their total.
    """
    if sensitivity < 1 or not parts:
        raise InvalidParameters("sensitivity must be >= 1 and a release has at least one part")
    used = [(s, n, d) for s, n, d in parts if d > 0] or parts
    for variance, contributors, coordinates in used:
        if min(variance, contributors) < 1 or coordinates < 0:
            raise InvalidParameters("variance and contributors must be >= 1, coordinates >= 0")
    n_var = min(float(n) * float(s) for s, n, _ in used)
    tau = max(kls_tau(s, n) for s, n, _ in used)
    coordinates = sum(d for _, _, d in used)
    ratio = float(sensitivity) ** 2 / n_var
    eps = min(math.sqrt(ratio + 0.5 * tau * coordinates), math.sqrt(ratio) + tau * math.sqrt(coordinates))
    return 0.5 * eps * eps * _ROUND_UP


def epsilon_from_rho(rho: float, delta: float) -> float:
    """eps with rho-zCDP => (eps, delta)-DP: rho + 2 sqrt(rho ln(1/delta)), rounded up."""
    if not 0 < delta < 1:
        raise InvalidParameters("delta must be in (0, 1)")
    if rho < 0:
        raise InvalidParameters("rho must be >= 0")
    if math.isinf(rho):
        return math.inf
    return (rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta))) * _ROUND_UP


def rho_for_epsilon(epsilon: float, delta: float) -> float:
    """The largest rho with epsilon_from_rho(rho, delta) <= epsilon (rounded down)."""
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise InvalidParameters("epsilon must be a positive finite number")
    if not 0 < delta < 1:
        raise InvalidParameters("delta must be in (0, 1)")
    log = math.log(1.0 / delta)
    rho = (math.sqrt(log + epsilon) - math.sqrt(log)) ** 2
    while epsilon_from_rho(rho, delta) > epsilon:
        rho *= 1 - 1e-9
    return rho


def noise_multiplier_for(epsilon: float, delta: float) -> float:
    """z with 1/(2 z^2) <= rho_for_epsilon(epsilon, delta / 2) (the reported conversion), less 1e-6 for tau."""
    rho = rho_for_epsilon(epsilon, delta / 2) * (1 - 1e-6)
    return math.sqrt(1.0 / (2.0 * rho)) * (1 + 1e-9)


@dataclass(frozen=True)
class DDPPolicy:
    """What a client itself requires of distributed DP (its own configuration, never the server's).

    ``minimum_noise_multiplier``: the client adds at least this much noise whatever the server
    proposes; ``colluders``: clients it assumes may add no noise; ``delta`` and ``epsilon_cap``: its
    update budget (the filter refuses an upload that would pass the cap); ``required``: a round
    without distributed DP is refused.
    """

    minimum_noise_multiplier: float = 0.0
    colluders: int = 0
    delta: float = 1e-6
    epsilon_cap: float = math.inf
    required: bool = False

    def __post_init__(self) -> None:
        z = self.minimum_noise_multiplier
        if isinstance(z, bool) or not isinstance(z, (int, float)) or not math.isfinite(z) or z < 0:
            raise InvalidParameters("minimum_noise_multiplier must be a finite number >= 0")
        if isinstance(self.colluders, bool) or not isinstance(self.colluders, int) or self.colluders < 0:
            raise InvalidParameters("colluders must be an integer >= 0")
        if not (isinstance(self.delta, (int, float)) and 0 < self.delta < 1):
            raise InvalidParameters("delta must be in (0, 1)")
        if isinstance(self.epsilon_cap, bool) or not isinstance(self.epsilon_cap, (int, float)) or not self.epsilon_cap >= 0:
            raise InvalidParameters("epsilon_cap must be a number >= 0 (math.inf for no cap)")


def reported_epsilon(rho: float, delta: float, total_variation: float = 0.0) -> float:
    """epsilon with every release (eps, delta)-DP although the noise came from the table sampler.

    A mechanism within total variation eta of a (eps, delta')-DP one is (eps, delta' + (1 + e^eps) eta)-DP.
    The zCDP conversion is taken at delta' = delta / 2, and the other half must cover (1 + e^eps) eta
    (eta: the sum over releases of coordinates x 2^-107); math.inf when it does not.
    """
    epsilon = epsilon_from_rho(rho, delta / 2)
    if total_variation > 0 and (1.0 + math.exp(min(epsilon, 700.0))) * total_variation > delta / 2:
        return math.inf
    return epsilon
