"""Modular vector arithmetic for the three input spaces: 2^32, 2^64 and the prime p = 2^61 - 1.

* 2^32 / 2^64: uint32 / uint64 numpy arrays; numpy's wraparound *is* the reduction, so no ``%``.
* p = 2^61 - 1 (a Mersenne prime): uint64 arrays holding residues in [0, p). Additions fold with
  ``(s & p) + (s >> 61)`` (since 2^61 = 1 mod p) followed by one conditional subtraction done with
  the unsigned-min trick (``min(s, s - p)`` wraps for s < p), never a boolean ``where=``.

Operands of :func:`add_inplace` / :func:`sub_inplace` for p may be in [0, p] inclusive (the value p
represents 0); results are always fully reduced to [0, p).
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

__all__ = [
    "Modulus",
    "P61",
    "dtype_of",
    "word_bytes",
    "modulus_value",
    "add_inplace",
    "sub_inplace",
    "reduce_p61_inplace",
    "mul_p61",
    "add_p61",
]

P61 = (1 << 61) - 1
_P61 = np.uint64(P61)
_M31 = np.uint64((1 << 31) - 1)
_M30 = np.uint64((1 << 30) - 1)
_S61 = np.uint64(61)
_S31 = np.uint64(31)
_S30 = np.uint64(30)
_ONE = np.uint64(1)


class Modulus(IntEnum):
    """The input space of a secure sum. The value is the wire code."""

    U32 = 1
    U64 = 2
    P61 = 3


def modulus_value(modulus: Modulus) -> int:
    if modulus is Modulus.U32:
        return 1 << 32
    if modulus is Modulus.U64:
        return 1 << 64
    return P61


def dtype_of(modulus: Modulus) -> np.dtype:
    return np.dtype(np.uint32) if modulus is Modulus.U32 else np.dtype(np.uint64)


def word_bytes(modulus: Modulus) -> int:
    return 4 if modulus is Modulus.U32 else 8


def reduce_p61_inplace(values: np.ndarray, scratch: np.ndarray | None = None) -> np.ndarray:
    """Reduce any uint64 values to [0, p) in place (two folds, one min)."""
    tmp = np.empty_like(values) if scratch is None else scratch[: values.size].reshape(values.shape)
    for _ in range(2):
        np.bitwise_and(values, _P61, out=tmp)
        np.right_shift(values, _S61, out=values)
        np.add(values, tmp, out=values)
    np.subtract(values, _P61, out=tmp)
    np.minimum(values, tmp, out=values)
    return values


def add_inplace(acc: np.ndarray, vec: np.ndarray, modulus: Modulus, scratch: np.ndarray | None = None) -> None:
    """acc += vec (mod modulus), in place."""
    np.add(acc, vec, out=acc)
    if modulus is Modulus.P61:
        reduce_p61_inplace(acc, scratch)


def sub_inplace(acc: np.ndarray, vec: np.ndarray, modulus: Modulus, scratch: np.ndarray | None = None) -> None:
    """acc -= vec (mod modulus), in place. For p, ``vec`` may be in [0, p]."""
    if modulus is Modulus.P61:
        np.add(acc, _P61, out=acc)
        np.subtract(acc, vec, out=acc)
        reduce_p61_inplace(acc, scratch)
    else:
        np.subtract(acc, vec, out=acc)


def mul_p61(a: np.ndarray, b: np.ndarray | np.uint64) -> np.ndarray:
    """Elementwise a * b mod p for uint64 residues below 2^61 (broadcasting); returns a new array.

    Operands are split into 31-bit low and 30-bit high halves so every partial product fits in 64
    bits, and the 2^62 / 2^31 weights are folded using 2^61 = 1 (mod p).
    """
    a = np.asarray(a, dtype=np.uint64)
    b = np.asarray(b, dtype=np.uint64)
    a_hi = a >> _S31
    a_lo = a & _M31
    b_hi = b >> _S31
    b_lo = b & _M31
    mid = a_hi * b_lo
    mid += a_lo * b_hi  # < 2^62
    result = (a_hi * b_hi) << _ONE  # hh * 2^62 = hh * 2 (mod p), < 2^61
    result += a_lo * b_lo  # < 2^62
    result += mid >> _S30  # m_hi * 2^61 = m_hi
    result += (mid & _M30) << _S31  # m_lo * 2^31, < 2^61; total < 2^63 + 2^32
    return reduce_p61_inplace(result)


def add_p61(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise a + b mod p for residues in [0, p]; returns a new array."""
    result = np.add(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64))
    return reduce_p61_inplace(result)
