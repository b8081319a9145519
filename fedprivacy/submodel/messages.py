"""Wire messages of the submodel round that are not secure-aggregation messages (format version 1).

``RandomizedSetReport``: a client's randomized index set S''_i, sent to the server after its ledger
line and memo are stored. Encoding: "FPRV" | 1 | protocol 3 (submodel) | type 1 | sender u32 |
count u32 | ids (count x u64, strictly increasing). Decoding raises DecodeError only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ..encoding import ProtocolCode, Reader, Writer
from ..errors import DecodeError

__all__ = ["RandomizedSetReport", "decode_submodel_message"]

_REPORT = 1
MAX_IDS = 1 << 28


@dataclass(frozen=True, eq=False)
class RandomizedSetReport:
    sender: int
    ids: np.ndarray  # uint64, strictly increasing

    def to_bytes(self) -> bytes:
        ids = np.asarray(self.ids, dtype=np.uint64)
        writer = Writer(ProtocolCode.SUBMODEL, _REPORT).u32(self.sender).u32(ids.shape[0])
        return writer.fixed(ids.astype(">u8").tobytes(), 8 * ids.shape[0]).finish()


def decode_submodel_message(data: bytes | bytearray | memoryview) -> RandomizedSetReport:
    try:
        reader = Reader(data, ProtocolCode.SUBMODEL)
        if reader.u8() != _REPORT:
            raise DecodeError("unknown submodel message type")
        sender = reader.u32()
        count = reader.count(MAX_IDS, 8)
        ids = np.frombuffer(reader.fixed(8 * count), dtype=">u8").astype(np.uint64)
        reader.done()
    except DecodeError:
        raise
    except (struct.error, ValueError, TypeError) as exc:
        raise DecodeError(f"malformed submodel message: {exc}") from None
    if count > 1 and not bool(np.all(ids[1:] > ids[:-1])):
        raise DecodeError("ids must be strictly increasing")
    return RandomizedSetReport(sender, ids)
