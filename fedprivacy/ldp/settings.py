"""Randomized-response parameters from user settings: one parser for the command line and the Flower
adapter, so that both accept, default and refuse the same things with the same words.

A setting is exactly one of a preset (``cpp``, the paper's CPP1..CPP5), target epsilons (``epsilon``
for epsilon_inf, optionally ``epsilon_1`` for one report) or the four probabilities ``p1..p4``. Errors
name the setting as its caller spells it (``--epsilon-1`` on the command line, ``fedprivacy-epsilon-1``
in a Flower config), give the allowed range and the value given. Parameters with an infinite
epsilon_inf (CPP1, or p2 = 0 with p1 > 0, ...) make the randomized set equal to the real index set, so
the server learns it: they are refused unless the caller passes ``allow_insecure=True``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import InvalidParameters
from ..hazmat.sampling import as_probability
from .params import CPP_PRESETS, TARGET_DENOMINATOR, RRParameters

__all__ = ["RRSettingNames", "CLI_NAMES", "MAX_TARGET_EPSILON", "rr_parameters_from_settings"]

# The largest epsilon_inf that target-derived probabilities (denominator 2^32) can reach: p1 = 1 - 2^-32.
MAX_TARGET_EPSILON = math.log(TARGET_DENOMINATOR - 1)


@dataclass(frozen=True)
class RRSettingNames:
    """How the caller spells each setting in messages. ``allow_insecure`` is None where the caller
    offers no way to accept an infinite epsilon."""

    cpp: str
    epsilon: str
    epsilon_1: str
    probabilities: tuple[str, str, str, str]
    allow_insecure: str | None


CLI_NAMES = RRSettingNames("--cpp", "--epsilon", "--epsilon-1", ("--p1", "--p2", "--p3", "--p4"), "--allow-insecure")


def rr_parameters_from_settings(
    *,
    cpp: object = None,
    epsilon: object = None,
    epsilon_1: object = None,
    probabilities: Sequence[object] | None = None,
    allow_insecure: bool = False,
    default: RRParameters | None = None,
    names: RRSettingNames = CLI_NAMES,
) -> RRParameters:
    """The parameters the settings name (None: not given). With none given: ``default``, or an error
    when there is no default. Raises :class:`InvalidParameters` with a message in the caller's terms."""
    given_p = probabilities is not None and any(p is not None for p in probabilities)
    choice = f"{names.cpp} N, {names.epsilon} EPS [{names.epsilon_1} EPS_1], or {' '.join(names.probabilities)}"
    if epsilon_1 is not None and epsilon is None:
        raise InvalidParameters(f"{names.epsilon_1} needs {names.epsilon} (epsilon_1 is at most epsilon_inf)")
    given = [cpp is not None, epsilon is not None, given_p]
    if sum(given) > 1:
        raise InvalidParameters(f"give only one of {choice}")
    if sum(given) == 0:
        if default is None:
            raise InvalidParameters(f"give one of {choice}")
        params, how = default, "the default parameters"
    elif given[0]:
        params, how = _preset(cpp, names), f"{names.cpp} {cpp}"
    elif given[1]:
        params, how = _from_epsilons(epsilon, epsilon_1, names), f"{names.epsilon} {epsilon}"
    else:
        params, how = _from_probabilities(list(probabilities or ()), names), " ".join(names.probabilities)
    if math.isinf(params.epsilon_inf) and not allow_insecure:
        how_to = (f"pass {names.allow_insecure} to run it anyway" if names.allow_insecure
                  else "this client does not accept that")
        raise InvalidParameters(
            f"{how} gives epsilon_inf = infinity: randomized response would then send the server every real "
            f"index set unprotected; {how_to}"
        )
    return params


def _preset(cpp: object, names: RRSettingNames) -> RRParameters:
    key = str(cpp).strip().upper()
    key = key if key.startswith("CPP") else f"CPP{key}"
    if isinstance(cpp, bool) or key not in CPP_PRESETS:
        allowed = ", ".join(k[3:] for k in CPP_PRESETS)
        raise InvalidParameters(f"{names.cpp} must be one of {allowed}, got {cpp!r}")
    p1, p2, p3, p4 = CPP_PRESETS[key]
    return RRParameters(p1, p2, p3, p4, allow_insecure=True)  # the caller's check above decides


def _number(value: object, name: str, upper: float) -> float:
    if isinstance(value, bool):
        raise InvalidParameters(f"{name} must be a number between 0 and {upper:.4g}, got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidParameters(f"{name} must be a number between 0 and {upper:.4g}, got {value!r}") from None
    if not (math.isfinite(number) and 0 <= number <= upper):
        raise InvalidParameters(f"{name} must be between 0 and {upper:.4g}, got {value!r}")
    return number


def _from_epsilons(epsilon: object, epsilon_1: object, names: RRSettingNames) -> RRParameters:
    hint = f" (the most that probabilities with denominator 2^32 reach; give {names.probabilities[0]}..{names.probabilities[3][-2:]} for more)"
    try:
        target = _number(epsilon, names.epsilon, MAX_TARGET_EPSILON)
    except InvalidParameters as exc:
        raise InvalidParameters(str(exc) + hint) from None
    target_1 = None if epsilon_1 is None else _number(epsilon_1, names.epsilon_1, target)
    return RRParameters.from_epsilons(target, target_1)


def _from_probabilities(values: list[object], names: RRSettingNames) -> RRParameters:
    if len(values) != 4 or any(v is None for v in values):
        raise InvalidParameters(f"{', '.join(names.probabilities)} go together")
    fractions = [as_probability(v, name) for v, name in zip(values, names.probabilities)]
    p1, p2, p3, p4 = fractions
    for high, low, (high_name, low_name) in ((p1, p2, names.probabilities[:2]), (p3, p4, names.probabilities[2:])):
        if low > high:
            raise InvalidParameters(f"{low_name} ({low}) must not exceed {high_name} ({high}): swap them")
    return RRParameters(p1, p2, p3, p4, allow_insecure=True)  # the caller's check decides
