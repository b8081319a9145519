"""Wire messages of the secure submodel round (format version 3, protocol code 3).

Every message starts "FPRV" | 1 | 3 | type; integers are big-endian, floats IEEE-754 big-endian, id
lists strictly increasing and Rice-coded (:mod:`fedprivacy.gapcode`). :func:`decode_submodel_message`
turns untrusted bytes into a message or raises :class:`DecodeError` (and nothing else).

| type | message              | direction        | when                                            |
|------|----------------------|------------------|-------------------------------------------------|
| 9    | RandomizedSetReport  | client -> server | after the union: S''_i (ledger line kept first) |
| 7    | RoundStart           | server -> client | opens the round / a PSU attempt                 |
| 3    | PhaseMessage         | both             | a secure-aggregation message of the PSU or rows |
| 10   | UnionBroadcast       | server -> client | the union U, to every PSU contributor           |
| 5    | SitOut               | client -> server | the client takes no (further) part this round   |
| 11   | RowDownload          | server -> client | the client's plan, its rows and the dense part  |

Version 2 (types 7 and 8 replaced 2 and 4): the rows' secure sum is set up with the PSU's first
attempt (its config travels in ``RoundStart``; its keys and shares in ROWS phase messages of the same
exchanges). Version 3 (types 9, 10, 11 replace 1, 8, 6, which are refused): the randomized set and the
union as Rice-coded id sets, the row plan in its compact form (chooser indices into the rows' sum's
parties, ``protocols/secagg/spec.md`` §12, type 18) and the row values as float32 when every value is
exactly a float32 (float64 otherwise): the same content in fewer bytes (``protocols/submodel/spec.md``).

``PhaseMessage`` wraps the bytes of a :mod:`fedprivacy.secagg.messages` message with the phase (PSU or
ROWS) and the PSU attempt, so a message of one secure sum can never be taken for one of the other.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from ..ddp.params import DDPSettings
from ..encoding import ProtocolCode, Reader, Writer
from ..errors import DecodeError, InvalidParameters
from ..gapcode import read_set, write_set
from ..hazmat.field import Modulus
from ..psu.params import PSUParameters
from ..secagg.messages import Message as SecAggMessage, decode_message
from ..secagg.params import SecAggConfig
from ..secagg.rows import ClientRowPlan

__all__ = [
    "Phase",
    "PublicSettings",
    "RandomizedSetReport",
    "RoundStart",
    "PhaseMessage",
    "UnionBroadcast",
    "SitOut",
    "RowDownload",
    "SubmodelMessage",
    "decode_submodel_message",
]

MAX_IDS = 1 << 28
MAX_DENSE = 1 << 28
_F64 = struct.Struct(">d")


class _Type(IntEnum):
    # 1: RandomizedSetReport of versions 1-2 (ids as u64), retired
    # 2: RoundStart of version 1 (without the rows' config), retired
    PHASE = 3
    # 4: UnionBroadcast of version 1 (ids only), retired
    SIT_OUT = 5
    # 6: RowDownload of versions 1-2 (plan types 8/10, float64 values), retired
    ROUND_START = 7  # version 2: also the rows' secure-sum config
    # 8: UnionBroadcast of version 2 (ids or a bitmap), retired
    REPORT = 9  # version 3: the ids Rice-coded
    UNION = 10  # version 3: the ids Rice-coded
    DOWNLOAD = 11  # version 3: the compact plan (type 18), values in their minimal lossless width


class Phase(IntEnum):
    """Which secure sum a wrapped secure-aggregation message belongs to."""

    PSU = 1  # the masked IBLT sketches (mod p)
    ROWS = 2  # the count-weighted row updates and the dense update


@dataclass(frozen=True)
class PublicSettings:
    """What every client must know about the round: the id space, the public caps, the quantizer."""

    universe: int  # row ids are in [0, universe); the dense parameters travel as rows above it
    max_set_size: int  # a client with a larger real set sits the round out
    clip: float  # per-parameter clip of row and dense deltas before quantization
    max_samples: int  # public bound on a client's examples (row counts and the dense weight)
    modulus: Modulus  # of the rows' secure sum
    min_choosers: int = 2  # a client uploads no row with fewer choosers (itself included)
    max_psu_attempts: int = 3  # a client takes part in at most this many PSU attempts
    ddp: DDPSettings | None = None  # distributed DP for the rows' secure sum (protocols/ddp/spec.md)

    def __post_init__(self) -> None:
        if self.ddp is not None and not isinstance(self.ddp, DDPSettings):
            raise InvalidParameters("ddp must be DDPSettings or None")
        if not isinstance(self.min_choosers, int) or not 1 <= self.min_choosers < 1 << 32:
            raise InvalidParameters("min_choosers must be an integer in [1, 2^32)")
        if not isinstance(self.max_psu_attempts, int) or not 1 <= self.max_psu_attempts <= 64:
            raise InvalidParameters("max_psu_attempts must be in [1, 64]")
        if not isinstance(self.universe, int) or not 1 <= self.universe < 1 << 63:
            raise InvalidParameters("universe must be an integer in [1, 2^63)")
        for name in ("max_set_size", "max_samples"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value < 1 << 32:
                raise InvalidParameters(f"{name} must be an integer in [1, 2^32)")
        if not (isinstance(self.clip, (int, float)) and math.isfinite(self.clip) and self.clip > 0):
            raise InvalidParameters("clip must be a positive finite number")
        try:
            object.__setattr__(self, "modulus", Modulus(self.modulus))
        except ValueError:
            raise InvalidParameters(f"unknown modulus {self.modulus!r}") from None

    def _write(self, writer: Writer) -> Writer:
        writer.u64(self.universe).u32(self.max_set_size).fixed(_F64.pack(float(self.clip)), 8)
        writer.u32(self.max_samples).u8(self.modulus).u32(self.min_choosers).u8(self.max_psu_attempts)
        if self.ddp is None:
            return writer.u8(0)
        ddp = self.ddp
        writer.u8(1).fixed(_F64.pack(float(ddp.l2_clip)), 8).fixed(_F64.pack(float(ddp.noise_multiplier)), 8)
        return writer.u32(ddp.sensitivity)

    @classmethod
    def _read(cls, reader: Reader) -> PublicSettings:
        universe, max_set_size = reader.u64(), reader.u32()
        clip = _F64.unpack(reader.fixed(8))[0]
        max_samples, modulus = reader.u32(), reader.u8()
        min_choosers, max_psu_attempts = reader.u32(), reader.u8()
        flag = reader.u8()
        try:
            ddp = None
            if flag == 1:
                l2_clip, multiplier = _F64.unpack(reader.fixed(8))[0], _F64.unpack(reader.fixed(8))[0]
                ddp = DDPSettings(l2_clip, multiplier, reader.u32())
            elif flag != 0:
                raise InvalidParameters("the ddp flag must be 0 or 1")
            return cls(universe, max_set_size, clip, max_samples, Modulus(modulus), min_choosers, max_psu_attempts, ddp)
        except (InvalidParameters, ValueError) as exc:
            raise DecodeError(f"invalid round settings: {exc}") from None


@dataclass(frozen=True, eq=False)
class RandomizedSetReport:
    sender: int
    ids: np.ndarray  # uint64, strictly increasing: S''_i
    round_index: int = 0

    def to_bytes(self) -> bytes:
        writer = Writer(ProtocolCode.SUBMODEL, _Type.REPORT).u32(self.sender).u64(self.round_index)
        return write_set(writer, np.asarray(self.ids, dtype=np.uint64)).finish()


@dataclass(frozen=True, eq=False)
class RoundStart:
    """Opens round ``round_index`` for ``recipient``, or a new PSU attempt (``psu_params.attempt``)."""

    recipient: int
    round_index: int
    settings: PublicSettings
    psu_params: PSUParameters
    psu_config: SecAggConfig
    rows_config: SecAggConfig  # the rows' sum, set up alongside the PSU's (dim: the rows' block width)

    def to_bytes(self) -> bytes:
        writer = Writer(ProtocolCode.SUBMODEL, _Type.ROUND_START).u32(self.recipient).u64(self.round_index)
        self.settings._write(writer)
        writer.blob(self.psu_params.encode()).blob(self.psu_config.encode())
        return writer.blob(self.rows_config.encode()).finish()


@dataclass(frozen=True, eq=False)
class PhaseMessage:
    phase: Phase
    attempt: int  # the PSU attempt (0 for the rows)
    payload: SecAggMessage

    @property
    def sender(self) -> int:
        return int(getattr(self.payload, "sender", 0))

    @property
    def recipient(self) -> int:
        return int(getattr(self.payload, "recipient", 0))

    def to_bytes(self) -> bytes:
        writer = Writer(ProtocolCode.SUBMODEL, _Type.PHASE).u8(self.phase).u8(self.attempt)
        return writer.blob(self.payload.to_bytes()).finish()


@dataclass(frozen=True, eq=False)
class UnionBroadcast:
    """The union U (the same bytes for every recipient)."""

    round_index: int
    ids: np.ndarray  # uint64, strictly increasing

    def to_bytes(self) -> bytes:
        writer = Writer(ProtocolCode.SUBMODEL, _Type.UNION).u64(self.round_index)
        return write_set(writer, np.asarray(self.ids, dtype=np.uint64)).finish()


@dataclass(frozen=True)
class SitOut:
    """The sender takes no further part in this round (its set is over the cap, or its budget says no).
    Deliberately without a reason."""

    sender: int
    round_index: int

    def to_bytes(self) -> bytes:
        return Writer(ProtocolCode.SUBMODEL, _Type.SIT_OUT).u32(self.sender).u64(self.round_index).finish()


@dataclass(frozen=True, eq=False)
class RowDownload:
    """The client's part of the row plan and what it trains on.

    ``plan.rows`` are its planned rows of S''_i followed by ``dense_rows`` pseudo-rows (ids universe,
    universe + 1, ...) that carry the dense update; ``rows`` holds the model's current values of the
    planned real rows (``len(plan.rows) - dense_rows`` rows of ``plan.width - 1`` floats: the last
    column of each uploaded block is the count), ``dense`` the dense parameters.
    """

    recipient: int
    round_index: int
    config: SecAggConfig
    plan: ClientRowPlan
    dense_rows: int
    rows: np.ndarray  # float64 (planned real rows, plan.width - 1)
    dense: np.ndarray  # float64 (dense_size,)

    def to_bytes(self) -> bytes:
        rows = np.ascontiguousarray(self.rows, dtype=np.float64)
        dense = np.ascontiguousarray(self.dense, dtype=np.float64)
        wire = ">f4" if _exact_in_float32(rows) and _exact_in_float32(dense) else ">f8"
        writer = Writer(ProtocolCode.SUBMODEL, _Type.DOWNLOAD).u32(self.recipient).u64(self.round_index)
        writer.blob(self.config.encode()).blob(self.plan.encode(self.config.party_ids)).u32(self.dense_rows)
        writer.u32(rows.shape[0]).u32(rows.shape[1] if rows.ndim == 2 else 0).u8(int(wire[-1]))
        values = rows.astype(wire).tobytes()
        writer.fixed(values, len(values))
        values = dense.astype(wire).tobytes()
        return writer.u32(dense.shape[0]).fixed(values, len(values)).finish()


def _exact_in_float32(values: np.ndarray) -> bool:
    """Whether every value survives a round trip through float32 (then the wire carries 4 bytes each)."""
    with np.errstate(over="ignore"):
        return bool(np.array_equal(values.astype(np.float32).astype(np.float64), values))


SubmodelMessage = RandomizedSetReport | RoundStart | PhaseMessage | UnionBroadcast | SitOut | RowDownload


def _ids(reader: Reader) -> np.ndarray:
    return read_set(reader, 1 << 64, MAX_IDS)


def _floats(reader: Reader, count: int, size: int) -> np.ndarray:
    values = np.frombuffer(reader.fixed(size * count), dtype=">f4" if size == 4 else ">f8").astype(np.float64)
    if not bool(np.isfinite(values).all()):
        raise DecodeError("parameters must be finite")
    return values


def _decode(reader: Reader) -> SubmodelMessage:
    kind = reader.u8()
    if kind == _Type.REPORT:
        sender, round_index = reader.u32(), reader.u64()
        return RandomizedSetReport(sender, _ids(reader), round_index)
    if kind == _Type.ROUND_START:
        recipient, round_index = reader.u32(), reader.u64()
        settings = PublicSettings._read(reader)
        psu_params = PSUParameters.decode(bytes(reader.blob(1 << 12)))
        psu_config = SecAggConfig.decode(bytes(reader.blob(1 << 26)))
        rows_config = SecAggConfig.decode(bytes(reader.blob(1 << 26)))
        return RoundStart(recipient, round_index, settings, psu_params, psu_config, rows_config)
    if kind == _Type.PHASE:
        try:
            phase = Phase(reader.u8())
        except ValueError:
            raise DecodeError("unknown phase") from None
        attempt = reader.u8()
        return PhaseMessage(phase, attempt, decode_message(reader.blob(1 << 31)))
    if kind == _Type.UNION:
        return UnionBroadcast(reader.u64(), _ids(reader))
    if kind == _Type.SIT_OUT:
        return SitOut(reader.u32(), reader.u64())
    if kind == _Type.DOWNLOAD:
        recipient, round_index = reader.u32(), reader.u64()
        config = SecAggConfig.decode(bytes(reader.blob(1 << 26)))
        plan = ClientRowPlan.decode(bytes(reader.blob(1 << 31)), config.party_ids)
        dense_rows = reader.u32()
        count, width, size = reader.u32(), reader.u32(), reader.u8()
        if count > MAX_IDS or width > 1 << 16:
            raise DecodeError("row block too large")
        if size not in (4, 8):
            raise DecodeError("row values are float32 or float64")
        rows = _floats(reader, count * width, size).reshape(count, width)
        dense = _floats(reader, reader.count(MAX_DENSE, size), size)
        if size == 8 and _exact_in_float32(rows) and _exact_in_float32(dense):
            raise DecodeError("values that are all exact in float32 travel as float32")
        if width + 1 != plan.width or count + dense_rows != plan.rows.shape[0]:
            raise DecodeError("row values do not match the plan")
        return RowDownload(recipient, round_index, config, plan, dense_rows, rows, dense)
    raise DecodeError("unknown submodel message type")


def decode_submodel_message(data: bytes | bytearray | memoryview) -> SubmodelMessage:
    try:
        reader = Reader(data, ProtocolCode.SUBMODEL)
        message = _decode(reader)
        reader.done()
        return message
    except DecodeError:
        raise
    except (struct.error, ValueError, TypeError, OverflowError) as exc:
        raise DecodeError(f"malformed submodel message: {exc}") from None
