"""The canonical encoding of a suspended submodel round client (``protocols/submodel/spec.md``, "Snapshot").

A :class:`StoredRound` is the decoded form: it holds what
:class:`~fedprivacy.submodel.client.SubmodelRoundClient` keeps between two messages, with its two
secure sums as their own snapshots (``protocols/secagg/spec.md`` §9, §14.6), and never the client's
persistent state (trainer, ledger, memo, policy) or its identity key. This module only writes and
reads bytes and checks that the fields agree with the stage; what the client's policy and ledger say
about a snapshot is checked by :meth:`~fedprivacy.submodel.client.SubmodelRoundClient.restore`.
Decoding raises :class:`~fedprivacy.errors.DecodeError` only.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from ..encoding import ProtocolCode, Reader, Writer
from ..errors import DecodeError
from ..gapcode import read_set, write_set
from ..psu.params import PSUParameters
from .messages import MAX_IDS, PublicSettings
from .stages import RoundClientStage

__all__ = ["SNAPSHOT_TYPE", "StoredRound", "decode_round", "encode_round"]

SNAPSHOT_TYPE = 12  # protocol 3; local persistence, never sent (decode_submodel_message refuses it)
_F64 = struct.Struct(">d")
_MAX_PARAMS = 1 << 16  # bounds the PSU parameters' blob
_MAX_SUM = (1 << 32) - 1  # a secure sum's snapshot: bounded by the bytes there are (Reader checks)
_STAGE_CODES = {stage: code for code, stage in enumerate(RoundClientStage)}
_STAGE_OF_CODE = {code: stage for stage, code in _STAGE_CODES.items()}
_SAT_OUT_CODES: dict[str | None, int] = {None: 0, "oversized": 1, "budget": 2, "update-budget": 3}
_SAT_OUT_OF_CODE = {code: reason for reason, code in _SAT_OUT_CODES.items()}

_S = RoundClientStage
# Which of (PSU sum, rows' sum, S''_i) a stage holds; SAT_OUT holds S''_i only when its update budget
# refused it (after the report).
_HOLDS: dict[RoundClientStage, tuple[bool, bool, bool]] = {
    _S.SKETCH_SENT: (True, True, False),
    _S.REPORT_SENT: (False, True, True),
    _S.UPLOADING: (False, True, True),
    _S.COMPLETED: (False, True, True),
    _S.SAT_OUT: (False, False, False),
}


@dataclass(frozen=True, eq=False)
class StoredRound:
    """The fields of a round client's snapshot (round fields are None in ``created``)."""

    party_id: int
    stage: RoundClientStage
    sat_out_reason: str | None
    training_seconds: float
    round_index: int | None = None
    settings: PublicSettings | None = None
    psu_params: PSUParameters | None = None
    psu_ceiling: int = 0
    real_ids: np.ndarray | None = None
    psu: bytes | None = None  # the PSU sum's SecAggClient snapshot
    rows: bytes | None = None  # the rows' sum's SecAggClient snapshot
    chosen: np.ndarray | None = None


def encode_round(stored: StoredRound) -> bytes:
    """The canonical bytes of ``stored`` (which :func:`decode_round` reads back)."""
    w = Writer(ProtocolCode.SUBMODEL, SNAPSHOT_TYPE).u32(stored.party_id).u8(_STAGE_CODES[stored.stage])
    w.u8(_SAT_OUT_CODES[stored.sat_out_reason]).fixed(_F64.pack(float(stored.training_seconds)), 8)
    if stored.stage is RoundClientStage.CREATED:
        return w.finish()
    assert stored.round_index is not None and stored.settings is not None and stored.psu_params is not None
    assert stored.real_ids is not None
    stored.settings._write(w.u64(stored.round_index))
    w.blob(stored.psu_params.encode()).u64(stored.psu_ceiling)
    write_set(w, stored.real_ids)
    for snapshot in (stored.psu, stored.rows):
        w.u8(snapshot is not None)
        if snapshot is not None:
            w.blob(snapshot)
    w.u8(stored.chosen is not None)
    if stored.chosen is not None:
        write_set(w, stored.chosen)
    return w.finish()


def decode_round(data: bytes | bytearray | memoryview) -> StoredRound:
    """The fields of a snapshot; :class:`DecodeError` (only) for bytes that are not one, or whose
    fields do not fit its stage."""
    try:
        reader = Reader(data, ProtocolCode.SUBMODEL)
        if reader.u8() != SNAPSHOT_TYPE:
            raise DecodeError("not a submodel round client snapshot")
        stored = _read(reader)
        reader.done()
    except DecodeError:
        raise
    except (struct.error, ValueError, TypeError, OverflowError) as exc:
        raise DecodeError(f"malformed round client snapshot: {type(exc).__name__}: {exc}") from None
    _check_stage(stored)
    return stored


def _read(reader: Reader) -> StoredRound:
    party_id = reader.u32()
    stage = _STAGE_OF_CODE.get(reader.u8())
    if stage is None or stage is RoundClientStage.ABORTED:
        raise DecodeError("unknown or aborted round client stage")
    code = reader.u8()
    if code not in _SAT_OUT_OF_CODE:
        raise DecodeError("unknown sat-out reason")
    seconds = _F64.unpack(reader.fixed(8))[0]
    if not (math.isfinite(seconds) and seconds >= 0):
        raise DecodeError("training time must be a finite number >= 0")
    if stage is RoundClientStage.CREATED:
        return StoredRound(party_id, stage, _SAT_OUT_OF_CODE[code], seconds)
    round_index = reader.u64()
    settings = PublicSettings._read(reader)
    psu_params = PSUParameters.decode(bytes(reader.blob(_MAX_PARAMS)))
    ceiling = reader.u64()
    real_ids = read_set(reader, settings.universe, settings.max_set_size)
    psu = bytes(reader.blob(_MAX_SUM)) if _flag(reader) else None
    rows = bytes(reader.blob(_MAX_SUM)) if _flag(reader) else None
    chosen = read_set(reader, settings.universe, MAX_IDS) if _flag(reader) else None
    return StoredRound(party_id, stage, _SAT_OUT_OF_CODE[code], seconds, round_index, settings, psu_params, ceiling,
                       real_ids, psu, rows, chosen)


def _flag(reader: Reader) -> bool:
    flag = reader.u8()
    if flag > 1:
        raise DecodeError("flag byte must be 0 or 1")
    return flag == 1


def _check_stage(stored: StoredRound) -> None:
    """The fields a stage holds, and the sat-out reason it may have (one encoding per client)."""
    stage, reason = stored.stage, stored.sat_out_reason
    if stage is RoundClientStage.CREATED:
        if reason is not None or stored.training_seconds:
            raise DecodeError("a created client has no sat-out reason and no training time")
        return
    psu, rows, chosen = _HOLDS[stage]
    if stage is RoundClientStage.SAT_OUT:
        chosen = reason == "update-budget"
        if reason is None:
            raise DecodeError("a client that sat out has its reason")
    elif reason not in (None, "oversized") or (reason == "oversized" and stage is not RoundClientStage.SKETCH_SENT):
        raise DecodeError("a sat-out reason in a stage that has none")
    if (stored.psu is not None, stored.rows is not None, stored.chosen is not None) != (psu, rows, chosen):
        raise DecodeError("the snapshot's secure sums or randomized set do not match its stage")
    if reason == "oversized" and stored.real_ids is not None and stored.real_ids.size:
        raise DecodeError("an oversized client sums an empty set")
