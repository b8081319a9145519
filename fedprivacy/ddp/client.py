"""The client's half of distributed DP: clip, quantize, add exact discrete Gaussian noise (sans-I/O).

Threat model and the neighbour relation: ``protocols/ddp/spec.md``. In one round a client uploads R
planned rows and the dense pseudo-rows, each row D values plus its weight (count / max_samples, in
[0, 1]). :func:`privatize` turns them into integers whose whole L2 norm is at most the public
``sensitivity``, then adds N_Z(0, S_rows) to every coordinate of the planned rows and N_Z(0, S_dense)
to every coordinate of the dense rows (weights included: the count sums are protected by the same
noise). Steps:

1. per-value clip to [-clip, clip] and weights normalised (as the plain quantizer does);
2. L2 clip of the whole upload to (sensitivity - sqrt(N)) / scale, N the number of coordinates, by
   scaling every weight by one factor (so each row's ratio sum / weight is unchanged);
3. stochastic rounding at ``scale`` (each coordinate moves by less than 1, so the integer vector's
   norm is below sensitivity; checked exactly on integers, a violation raises);
4. noise from :func:`fedprivacy.hazmat.discrete_gaussian.discrete_gaussian_table`, rows first, then
   dense (within total variation 2^-107 per coordinate of N_Z(0, S); folded into delta, spec §5).

Leaks: the server sees the noisy sums only; the number of planned rows is public anyway (the plan).
Time depends on the noise drawn (rejection sampling).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameters
from ..hazmat.discrete_gaussian import discrete_gaussian_table
from ..hazmat.field import P61, Modulus, modulus_value
from ..hazmat.prg import RandomSource, system_random_bytes
from ..secagg.quantize import Quantizer
from .params import DDPSettings

__all__ = ["NoisePlan", "clip_factor", "clip_and_round", "exact_squared_norm", "privatize", "to_modulus", "check_overflow", "OVERFLOW_FAILURE_LOG2"]

OVERFLOW_FAILURE_LOG2 = -40  # a coordinate of the noisy sum wraps with probability below 2^-40 per round
_CHUNK = 1 << 12  # (2^25)^2 * 2^12 < 2^63


@dataclass(frozen=True)
class NoisePlan:
    """A client's noise for one upload: integer variances for the planned rows and the dense rows."""

    row_variance: int
    dense_variance: int


def clip_factor(values: np.ndarray, weights: np.ndarray, clip: float, bound: float) -> float:
    """The factor f in (0, 1] with ||[clip(values) * (f w), f w]||_2 <= bound (the weights scaled)."""
    clipped = np.clip(values, -clip, clip)
    squares = (np.einsum("ij,ij->i", clipped, clipped) + 1.0) * weights * weights
    norm = math.sqrt(math.fsum(squares.tolist())) if squares.size else 0.0
    if norm <= bound:
        return 1.0
    return bound / norm * (1 - 1e-9)


def exact_squared_norm(values: np.ndarray) -> int:
    """sum of squares of int64 values with |v| < 2^25, as an exact Python integer."""
    flat = values.reshape(-1)
    largest = int(np.abs(flat).max()) if flat.size else 0
    if largest >= 1 << 25:  # then the sum exceeds any sensitivity (at most 2^24) anyway
        return largest * largest
    total = 0
    for start in range(0, flat.shape[0], _CHUNK):  # chunks: each chunk's sum of squares fits in int64
        part = flat[start : start + _CHUNK]
        total += int(np.dot(part, part))
    return total


def clip_and_round(
    values: np.ndarray, weights: np.ndarray, clip: float, settings: DDPSettings, *, random_bytes: RandomSource = system_random_bytes
) -> np.ndarray:
    """Steps 1-3: signed int64 rows (R, D + 1) of L2 norm at most ``settings.sensitivity`` (checked exactly)."""
    coordinates = values.shape[0] * (values.shape[1] + 1)
    slack = math.sqrt(coordinates)
    if settings.sensitivity <= 2 * slack:
        raise InvalidParameters(
            f"sensitivity {settings.sensitivity} is too small for {coordinates} coordinates: rounding alone "
            f"moves the norm by up to {slack:.0f}; raise it to at least {math.ceil(4 * slack)}"
        )
    scale = settings.scale
    factor = clip_factor(values, weights, clip, (settings.sensitivity - slack) / scale)
    quantizer = Quantizer(Modulus.U64, clip, 1, max_weight=1.0, scale=scale)
    rounded = quantizer.encode_rows(values, weights * factor, random_bytes=random_bytes).view(np.int64)
    if exact_squared_norm(rounded) > settings.sensitivity**2:
        raise AssertionError("clipped upload exceeds the sensitivity")  # impossible by the triangle inequality
    return rounded


def privatize(
    values: np.ndarray,
    weights: np.ndarray,
    dense_rows: int,
    clip: float,
    settings: DDPSettings,
    noise: NoisePlan,
    *,
    random_bytes: RandomSource = system_random_bytes,
) -> np.ndarray:
    """Signed int64 rows (R, D + 1): clipped, quantized, noised. The last ``dense_rows`` rows are dense.

    ``values`` (R, D) float deltas and ``weights`` (R,) in [0, 1]. Raises :class:`InvalidParameters`
    when the upload has so many coordinates that rounding alone could exceed the sensitivity.
    """
    values = np.asarray(values, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if values.ndim != 2 or weights.shape != (values.shape[0],) or not 0 <= dense_rows <= values.shape[0]:
        raise InvalidParameters("values must be (rows, D), weights one per row, dense_rows at most rows")
    if not (np.isfinite(values).all() and np.isfinite(weights).all()) or (weights.size and (weights.min() < 0 or weights.max() > 1)):
        raise InvalidParameters("values must be finite and weights in [0, 1]")
    rounded = clip_and_round(values, weights, clip, settings, random_bytes=random_bytes)
    real = values.shape[0] - dense_rows
    width = values.shape[1] + 1
    rounded[:real] += discrete_gaussian_table(noise.row_variance, real * width, random_bytes).reshape(real, width)
    rounded[real:] += discrete_gaussian_table(noise.dense_variance, dense_rows * width, random_bytes).reshape(dense_rows, width)
    return rounded


def to_modulus(signed: np.ndarray, modulus: Modulus) -> np.ndarray:
    """Signed integers as the secure sum's words: two's complement mod 2^k, residues mod p."""
    if modulus is Modulus.P61:
        out = signed.astype(np.int64)
        out += np.int64(P61) * (out < 0)
        return out.astype(np.uint64)
    if modulus is Modulus.U32:
        return signed.astype(np.int64).astype(np.uint32)
    return signed.astype(np.int64).view(np.uint64)


def check_overflow(modulus: Modulus, clients: int, sensitivity: int, variance: int, coordinates: int) -> float:
    """Refuse settings whose noisy sum could wrap; returns the tail bound used.

    Every coordinate of the sum is at most clients * sensitivity from the signal, plus the noise: a
    sum of ``clients`` discrete Gaussians of variance ``variance`` is sub-Gaussian with variance
    proxy clients * variance (Canonne et al., Corollary 9), so P[|noise| > t] <= 2 exp(-t^2 / (2 n S)).
    With t chosen so that ``coordinates`` such events together stay below 2^-40, the sum must stay
    below half the modulus (the sign survives).
    """
    if min(clients, sensitivity, variance, coordinates) < 1:
        raise InvalidParameters("clients, sensitivity, variance and coordinates must be >= 1")
    log_terms = math.log(2.0 * coordinates) - OVERFLOW_FAILURE_LOG2 * math.log(2.0)
    tail = math.sqrt(2.0 * clients * variance * log_terms)
    total = clients * sensitivity + math.ceil(tail) + 1
    half = modulus_value(modulus) // 2
    if total >= half:
        raise InvalidParameters(
            f"the noisy sum could wrap modulo {modulus.name}: {clients} clients x {sensitivity} + noise tail "
            f"{tail:.0f} >= {half}; use a larger modulus or a smaller sensitivity"
        )
    return tail
