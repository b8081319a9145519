"""Quantization of float vectors for secure summation, with an overflow budget that cannot wrap.

A client clips each value to [-clip, clip], multiplies by its weight w in [0, max_weight], scales by
``scale`` (levels per unit) and rounds stochastically (E[q] = w x scale up to 2^-32: the coins are 32-bit). The weight itself
is appended as one more coordinate, quantized the same way, so the server can form the weighted
mean. Values are signed integers stored in two's complement mod 2^32 / 2^64, or as residues mod p.

Overflow budget: each coordinate of one client is at most ceil(max_weight * max(clip, 1) * scale) + 1
in absolute value; with ``num_clients`` summands the total must stay below half the modulus
(so the sign survives). The constructor refuses any (scale, num_clients) pair that could wrap, and
the default ``scale`` is the largest that cannot (capped at 2^52 so floats stay exact).

Stochastic rounding draws its coins from an AES-CTR keystream keyed from ``random_bytes`` (the OS
CSPRNG by default), never from ``numpy.random``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidParameters
from ..hazmat.field import P61, Modulus, dtype_of, modulus_value
from ..hazmat.prg import RandomSource, keystream_words, system_random_bytes

__all__ = ["Quantizer"]

_MAX_EXACT = float(1 << 52)


@dataclass(frozen=True)
class Quantizer:
    modulus: Modulus
    clip: float
    num_clients: int
    max_weight: float = 1.0
    scale: float | None = None
    levels_bound: int = field(init=False, repr=False)  # max |coordinate| one client can send

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "modulus", Modulus(self.modulus))
        except ValueError:
            raise InvalidParameters(f"unknown modulus {self.modulus!r}") from None
        for name in ("clip", "max_weight"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InvalidParameters(f"{name} must be a positive finite number, got {value!r}")
        if not isinstance(self.num_clients, int) or self.num_clients < 1:
            raise InvalidParameters(f"num_clients must be a positive integer, got {self.num_clients!r}")
        half = self._half_range()
        magnitude = self.max_weight * max(self.clip, 1.0)
        largest = min((half - 1) // self.num_clients - 1, int(_MAX_EXACT))
        if largest < 1:
            raise InvalidParameters(f"{self.num_clients} clients cannot be summed in this modulus")
        scale = self.scale
        if scale is None:
            whole = math.floor(largest / magnitude * (1 - 1e-12))
            if whole < 1:
                raise InvalidParameters(
                    f"no integer scale fits: {self.num_clients} clients x max_weight {self.max_weight} x clip {self.clip}"
                )
            scale = float(whole)
            object.__setattr__(self, "scale", scale)
        elif not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise InvalidParameters(f"scale must be a positive finite number, got {self.scale!r}")
        bound = math.ceil(magnitude * scale) + 1
        if bound > largest + 1 or bound * self.num_clients >= half:
            raise InvalidParameters(
                f"scale {self.scale} could overflow: {self.num_clients} clients x {bound} >= {half} "
                f"(largest safe scale is {math.floor(largest / magnitude)})"
            )
        object.__setattr__(self, "levels_bound", bound)

    def _half_range(self) -> int:
        return modulus_value(self.modulus) // 2

    def encode(self, values: object, weight: float = 1.0, *, random_bytes: RandomSource = system_random_bytes) -> np.ndarray:
        """Integers for one client: D quantized weighted values, then the quantized weight."""
        array = np.asarray(values, dtype=np.float64)
        if array.ndim != 1:
            raise InvalidParameters("values must be a vector")
        return self.encode_rows(array[None, :], [weight], random_bytes=random_bytes)[0]

    def encode_rows(self, values: object, weights: object, *, random_bytes: RandomSource = system_random_bytes) -> np.ndarray:
        """Row-wise: row i becomes its D quantized values times weights[i], then its quantized weight.

        Shape (R, D) in, (R, D + 1) out. Each row obeys the same per-client bound as :meth:`encode`.
        """
        array = np.asarray(values, dtype=np.float64)
        weight = np.asarray(weights, dtype=np.float64)
        if array.ndim != 2 or weight.shape != (array.shape[0],):
            raise InvalidParameters("values must be (rows, D) and weights one per row")
        if not (np.all(np.isfinite(array)) and np.all(np.isfinite(weight))):
            raise InvalidParameters("values and weights must be finite")
        if weight.size and (weight.min() < 0 or weight.max() > self.max_weight):
            raise InvalidParameters(f"weights must be in [0, {self.max_weight}]")
        assert self.scale is not None
        scaled = np.empty((array.shape[0], array.shape[1] + 1), dtype=np.float64)
        np.clip(array, -self.clip, self.clip, out=scaled[:, :-1])
        scaled[:, :-1] *= (weight * self.scale)[:, None]
        scaled[:, -1] = weight * self.scale
        floor = np.floor(scaled)
        scaled -= floor  # the fraction, in [0, 1)
        scaled *= 2.0**32  # exact (a power of two): coins * 2^-32 < fraction  <=>  coins < fraction * 2^32
        coins = keystream_words(random_bytes(16), scaled.size, Modulus.U32).reshape(scaled.shape)
        floor += np.less(coins, scaled)
        quantized = floor.astype(np.int64)
        if self.modulus is Modulus.P61:
            quantized += np.int64(P61) * (quantized < 0)
            return quantized.astype(np.uint64)
        return quantized.astype(dtype_of(self.modulus))  # two's complement wrap

    def decode_rows(self, summed: object) -> tuple[np.ndarray, np.ndarray]:
        """(weighted sums of shape (R, D), total weights of shape (R,)) from summed (R, D + 1) rows."""
        array = np.asarray(summed)
        if array.ndim != 2 or array.shape[1] < 1:
            raise InvalidParameters("summed rows must be (rows, D + 1)")
        signed = self._signed(array.reshape(-1)).reshape(array.shape)
        assert self.scale is not None
        return signed[:, :-1] / self.scale, signed[:, -1] / self.scale

    def _signed(self, array: np.ndarray) -> np.ndarray:
        if self.modulus is Modulus.U32:
            return array.astype(np.uint32).view(np.int32).astype(np.float64)
        if self.modulus is Modulus.U64:
            return array.astype(np.uint64).view(np.int64).astype(np.float64)
        as_int = array.astype(np.uint64)
        return np.where(as_int > P61 // 2, as_int.astype(np.float64) - float(P61), as_int.astype(np.float64))

    def decode(self, summed: object) -> tuple[np.ndarray, float]:
        """(sum of weighted values, sum of weights) from the secure sum of encoded vectors."""
        array = np.asarray(summed)
        if array.ndim != 1 or array.shape[0] < 1:
            raise InvalidParameters("summed must be a non-empty vector")
        totals, weights = self.decode_rows(array[None, :])
        return totals[0], float(weights[0])

    def mean(self, summed: object) -> np.ndarray:
        """The weighted mean (``InvalidParameters`` if the total weight is zero)."""
        total, weight = self.decode(summed)
        if weight <= 0:
            raise InvalidParameters("total weight is zero; no mean exists")
        return total / weight
