"""Versioned, canonical, domain-separated wire encoding.

Every message starts with ``MAGIC`` (4 bytes), the wire version (1 byte), a protocol code (1 byte)
and a message-type code (1 byte); fields follow as fixed-width big-endian integers, fixed-size byte
strings, or u32-length-prefixed byte strings. Id lists are strictly increasing (sorted, duplicate
free). Exactly one encoding exists per message: the decoder rejects trailing bytes, unsorted or
duplicated ids, out-of-range values and wrong lengths, and raises only :class:`DecodeError`.

``domain_tag`` builds the HKDF ``info`` / AEAD associated-data prefixes so that no key, mask or
ciphertext of one usage can be mistaken for another.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from enum import IntEnum
from itertools import pairwise

from .errors import DecodeError

__all__ = ["MAGIC", "WIRE_VERSION", "ProtocolCode", "Writer", "Reader", "domain_tag"]

MAGIC = b"FPRV"
WIRE_VERSION = 1
LIBRARY_LABEL = b"fedprivacy/v1"

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class ProtocolCode(IntEnum):
    """Which protocol a message belongs to (the second byte after the magic)."""

    SECAGG = 1
    PSU = 2
    SUBMODEL = 3


def domain_tag(*parts: bytes | str | int) -> bytes:
    """Unambiguous byte string naming a usage: the library label, then each part as a type byte
    (``i`` integer as 8-byte big-endian, ``s`` UTF-8 string, ``b`` bytes), a u32 length and the bytes.
    """
    out = bytearray(LIBRARY_LABEL)
    for part in parts:
        if isinstance(part, bool):
            raise TypeError("domain tag parts are int, str or bytes")
        if isinstance(part, int):
            if part < 0 or part >= 1 << 64:
                raise ValueError("domain tag integers must fit in 64 bits")
            kind, raw = b"i", _U64.pack(part)
        elif isinstance(part, str):
            kind, raw = b"s", part.encode("utf-8")
        else:
            kind, raw = b"b", bytes(part)
        out += kind + _U32.pack(len(raw)) + raw
    return bytes(out)


class Writer:
    """Builds one canonical message."""

    __slots__ = ("_parts",)

    def __init__(self, protocol: ProtocolCode, message_type: int) -> None:
        self._parts: list[bytes] = [MAGIC, _U8.pack(WIRE_VERSION), _U8.pack(protocol), _U8.pack(message_type)]

    def u8(self, value: int) -> Writer:
        self._parts.append(_U8.pack(value))
        return self

    def u16(self, value: int) -> Writer:
        self._parts.append(_U16.pack(value))
        return self

    def u32(self, value: int) -> Writer:
        self._parts.append(_U32.pack(value))
        return self

    def u64(self, value: int) -> Writer:
        self._parts.append(_U64.pack(value))
        return self

    def fixed(self, data: bytes, size: int) -> Writer:
        if len(data) != size:
            raise ValueError(f"expected {size} bytes, got {len(data)}")
        self._parts.append(bytes(data))
        return self

    def blob(self, data: bytes | memoryview) -> Writer:
        self._parts.append(_U32.pack(len(data)))
        self._parts.append(bytes(data))
        return self

    def id_list(self, ids: Iterable[int]) -> Writer:
        ordered = sorted(ids)
        if len(set(ordered)) != len(ordered):
            raise ValueError("id lists must not contain duplicates")
        self._parts.append(_U32.pack(len(ordered)))
        self._parts.append(struct.pack(f">{len(ordered)}I", *ordered))
        return self

    def finish(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    """Parses one canonical message; every failure is a :class:`DecodeError`."""

    __slots__ = ("_view", "_pos")

    def __init__(self, data: bytes | bytearray | memoryview, protocol: ProtocolCode) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DecodeError(f"expected bytes, got {type(data).__name__}")
        if isinstance(data, memoryview) and not (data.contiguous and data.ndim == 1 and data.itemsize == 1):
            data = bytes(data)  # a strided or multi-byte view: take a flat copy
        self._view = memoryview(data)
        self._pos = 0
        if self.fixed(len(MAGIC)) != MAGIC:
            raise DecodeError("not a fedprivacy message (bad magic)")
        version = self.u8()
        if version != WIRE_VERSION:
            raise DecodeError(f"unsupported wire version {version}")
        code = self.u8()
        if code != protocol:
            raise DecodeError(f"message belongs to protocol {code}, expected {int(protocol)}")

    def _take(self, size: int) -> memoryview:
        if size < 0 or self._pos + size > len(self._view):
            raise DecodeError("message truncated")
        chunk = self._view[self._pos : self._pos + size]
        self._pos += size
        return chunk

    def u8(self) -> int:
        return _U8.unpack(self._take(1))[0]

    def u16(self) -> int:
        return _U16.unpack(self._take(2))[0]

    def u32(self) -> int:
        return _U32.unpack(self._take(4))[0]

    def u64(self) -> int:
        return _U64.unpack(self._take(8))[0]

    def fixed(self, size: int) -> bytes:
        return bytes(self._take(size))

    def view(self, size: int) -> memoryview:
        """The next ``size`` bytes without copying."""
        return self._take(size)

    def blob(self, max_size: int) -> memoryview:
        size = self.u32()
        if size > max_size:
            raise DecodeError(f"field of {size} bytes exceeds the limit of {max_size}")
        return self._take(size)

    def count(self, max_count: int, item_size: int = 1) -> int:
        value = self.u32()
        if value > max_count:
            raise DecodeError(f"count {value} exceeds the limit of {max_count}")
        if value * item_size > len(self._view) - self._pos:
            raise DecodeError("message truncated")
        return value

    def id_list(self, max_count: int) -> tuple[int, ...]:
        n = self.count(max_count, 4)
        raw = self._take(4 * n)
        ids = struct.unpack(f">{n}I", raw)
        check_strictly_increasing(ids)
        return ids

    def done(self) -> None:
        if self._pos != len(self._view):
            raise DecodeError(f"{len(self._view) - self._pos} trailing bytes")


def check_strictly_increasing(ids: Sequence[int]) -> None:
    """Canonical id order: strictly increasing (so also duplicate free)."""
    for a, b in pairwise(ids):
        if a >= b:
            raise DecodeError("ids must be strictly increasing")
