"""Rice-coded sets of integers: the compact wire form of id lists and sparse bitmaps.

A strictly increasing sequence v_0 < v_1 < ... < v_{m-1} of integers in [0, 2^64) is sent as its gaps
g_0 = v_0, g_i = v_i - v_{i-1} - 1, each split by a parameter k into q_i = g_i >> k (unary) and
r_i = g_i mod 2^k (k bits). Layout (a field inside a versioned message, see ``protocols/*/spec.md``):

    count m u32 ; if m > 0: k u8 ; unary length L u32 ; L bytes ; ceil(m k / 8) bytes

The unary stream holds, for each i in order, q_i zero bits then a one bit (bit 7 - (j mod 8) of byte
j // 8 is stream bit j); its last byte holds the last one (the bits after it are zero). The remainder
stream holds r_0, r_1, ... as k-bit big-endian fields, zero-padded to a whole byte. k is not free: it
must equal :func:`rice_parameter` (m, v_{m-1}), so every set has exactly one encoding; decoding refuses
any other k, non-zero padding, a unary stream of another length or number of ones, and values at or
above the caller's limit. For gaps of mean mu the cost is about log2(mu) + 2 bits per value (a bitmap
costs mu + 1 bits, a u64 list 64). Encoding and decoding are vectorised (no per-value Python loop).
"""

from __future__ import annotations

import numpy as np

from .encoding import Reader, Writer
from .errors import DecodeError

__all__ = ["rice_parameter", "write_set", "read_set", "pack_fields", "unpack_fields", "read_fields"]

_U64 = np.uint64


def rice_parameter(count: int, last: int) -> int:
    """The canonical k for ``count`` values whose largest is ``last``: about log2(0.7 x mean gap)."""
    if count <= 0:
        return 0
    mean = (last + 1 - count) // count  # mean of the g_i
    return max(0, ((mean * 45) >> 6).bit_length() - 1)


def write_set(writer: Writer, values: np.ndarray) -> Writer:
    """Append the Rice-coded field of ``values`` (strictly increasing, in [0, 2^64))."""
    values = np.asarray(values, dtype=_U64).reshape(-1)
    count = values.shape[0]
    writer.u32(count)
    if count == 0:
        return writer
    k = rice_parameter(count, int(values[-1]))
    gaps = np.empty(count, dtype=_U64)
    gaps[0] = values[0]
    np.subtract(values[1:], values[:-1], out=gaps[1:])
    gaps[1:] -= _U64(1)
    quotients = gaps >> _U64(k)
    ones = np.cumsum(quotients + _U64(1)) - _U64(1)  # stream positions of the terminating ones
    unary = np.zeros(int(ones[-1]) + 1, dtype=np.uint8)
    unary[ones.astype(np.int64)] = 1
    unary_bytes = np.packbits(unary)
    writer.u8(k).u32(unary_bytes.shape[0]).fixed(unary_bytes.tobytes(), unary_bytes.shape[0])
    if k:
        writer.fixed(pack_fields(gaps, k), (count * k + 7) // 8)
    return writer


def read_set(reader: Reader, limit: int, max_count: int) -> np.ndarray:
    """Read a Rice-coded field: strictly increasing uint64 values, each below ``limit`` (<= 2^64), at
    most ``max_count`` of them. Raises :class:`DecodeError` for anything but the canonical encoding."""
    count = reader.count(max_count, 0)  # a dense set takes fewer bytes than values: checked below
    if count == 0:
        return np.zeros(0, dtype=_U64)
    k = reader.u8()
    if k > 63:
        raise DecodeError("Rice parameter out of range")
    length = reader.count(1 << 31, 1)
    unary = np.frombuffer(reader.fixed(length), dtype=np.uint8)
    ones = np.flatnonzero(np.unpackbits(unary).view(bool))  # as bools: numpy's fast nonzero path
    if ones.shape[0] != count or (ones[-1] >> 3) != length - 1:
        raise DecodeError("a Rice unary stream must hold one terminator per value and end with the last")
    quotients = np.diff(ones, prepend=-1) - 1  # int64, each below 8 * length
    remainders = np.zeros(count, dtype=_U64)
    if k:
        raw = np.frombuffer(reader.fixed((count * k + 7) // 8), dtype=np.uint8)
        remainders = unpack_fields(raw, count, k)
    last = (int(quotients.sum()) << k) + int(remainders.sum()) + count - 1  # exact: Python integers
    if last >= limit or last >= 1 << 64:
        raise DecodeError("a Rice-coded value is out of range")
    if k != rice_parameter(count, last):
        raise DecodeError("non-canonical Rice parameter")
    gaps = (quotients.astype(_U64) << _U64(k)) | remainders
    values = np.cumsum(gaps + _U64(1)) - _U64(1)  # no partial sum exceeds last + 1 <= 2^64 (mod 2^64)
    return values


def pack_fields(values: np.ndarray, k: int) -> bytes:
    """The low k bits of each value as consecutive big-endian k-bit fields, zero-padded to a byte."""
    width = (k + 7) // 8
    raw = (values & _U64((1 << k) - 1)).astype(">u8").view(np.uint8).reshape(-1, 8)[:, 8 - width:]
    bits = np.unpackbits(raw, axis=1)[:, 8 * width - k:]
    return np.packbits(bits.reshape(-1)).tobytes()


def unpack_fields(raw: np.ndarray, count: int, k: int) -> np.ndarray:
    """The inverse of :func:`pack_fields`; the padding bits must be zero."""
    total = count * k
    if total % 8 and raw[-1] & ((1 << (8 - total % 8)) - 1):
        raise DecodeError("Rice remainder padding must be zero")
    if k > 56:  # rare: a field may span nine bytes
        bits = np.unpackbits(raw)[:total].reshape(count, k)
        padded = np.zeros((count, 64), dtype=np.uint8)
        padded[:, 64 - k:] = bits
        return np.packbits(padded, axis=1).view(">u8").reshape(count).astype(_U64)
    return read_fields(raw, np.arange(count, dtype=np.int64) * k, k)


def read_fields(raw: np.ndarray, starts: np.ndarray, k: int) -> np.ndarray:
    """The k-bit big-endian fields (k <= 56) at bit offsets ``starts`` of ``raw`` (all inside it), as uint64.

    A field starting at bit b of its first byte spans b + k bits: fields of up to 9 bits are read
    from the 16-bit big-endian word at their byte, up to 25 bits from the 32-bit one (a table of
    those words, one per byte, is built first: the narrow reads are what a row plan's small Rice
    parameters need), longer ones from 64-bit windows."""
    # 32-bit byte indices where they fit (measured faster in a plan's decoding than intp ones)
    index = np.intp if raw.shape[0] >= 1 << 31 else np.int32
    at, bit = (starts >> 3).astype(index), starts & 7
    if k + 7 <= 32:
        bits, dtype = (16, np.uint16) if k + 7 <= 16 else (32, np.uint32)
        padded = np.zeros(raw.shape[0] + bits // 8, dtype=np.uint8)
        padded[: raw.shape[0]] = raw
        table = padded[: raw.shape[0] + 1].astype(dtype)  # the big-endian word starting at each byte
        for offset in range(1, bits // 8):
            table <<= dtype(8)
            table |= padded[offset : raw.shape[0] + 1 + offset]
        words = np.take(table, at)
        words <<= bit.astype(dtype)
        words >>= dtype(bits - k)
        return words.astype(_U64)
    padded = np.zeros(raw.shape[0] + 8, dtype=np.uint8)
    padded[: raw.shape[0]] = raw
    windows = np.lib.stride_tricks.as_strided(padded, shape=(raw.shape[0] + 1, 8), strides=(1, 1))
    wide = np.take(windows, at, axis=0).view(">u8").reshape(-1).astype(_U64)
    wide <<= bit.astype(_U64)
    wide >>= _U64(64 - k)
    return wide
