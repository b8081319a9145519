"""The permanent-response memo: one client's lifetime answers, and its canonical byte format.

The memo maps every index the client was ever asked about to its permanent answer (in S' or not)
and counts how many instantaneous reports were drawn from that answer. It is what keeps repeated
rounds within epsilon_inf: losing or resetting it would draw fresh permanent answers and spend the
budget again, so decoding a damaged or foreign memo is an error, never a silent reset.

Format (version 2, all integers little-endian):

    "FPMEMO" | version u8 = 2 | client_id (u16 length + UTF-8) | epoch u32 |
    ledger_seq u64 | ledger_head (32 bytes; zeros for a fresh memo) |
    ledger_line (u32 length + UTF-8; empty for a fresh memo) |
    p1 p2 p3 p4 (each numerator u64, denominator u64) | count u64 |
    ids (count x u64, strictly increasing) | answers (ceil(count/8) bytes, bit i = LSB-first) |
    reports (count x u32) | SHA-256 of everything before (32 bytes)

The parameters are frozen with the memo: a memo answers only for the parameters it was drawn with
(new parameters start a new epoch, charged as new events by the accountant). The anchor
(ledger_seq, ledger_head) is the position and hash of the ledger line that recorded the release this
memo was saved after: a ledger that no longer holds that line (truncated, replaced) or that records a
later release (the memo was rolled back) does not match, and participation refuses.

Version 2 also carries the anchor line itself (``ledger_line``): the memo is saved *before* the
line is appended to the ledger, so a crash between the two writes leaves a memo one line ahead of
its ledger, and the line is rolled forward from the memo (see ``protocols/ldp/storage.md``).
Version 1 (no ``ledger_line``; saved after the line was appended) is still read: it decodes with an
empty ``ledger_line`` and ``version == 1``. Encoding always writes version 2.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..errors import DecodeError, InvalidParameters
from .params import RRParameters

__all__ = ["PermanentMemo", "MEMO_MAGIC"]

MEMO_MAGIC = b"FPMEMO"
MEMO_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_MAX_LINE = 1 << 20  # a ledger line is a few hundred bytes
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


@dataclass(frozen=True, eq=False)
class PermanentMemo:
    client_id: str
    params: RRParameters
    epoch: int
    ids: np.ndarray  # uint64, strictly increasing
    answers: np.ndarray  # bool: the permanent answer (in S')
    reports: np.ndarray  # uint32: instantaneous reports drawn from this answer
    ledger_seq: int = 0
    ledger_head: bytes = bytes(32)  # zeros: a fresh memo, never saved after a release
    ledger_line: str = ""  # the anchor line's text (version 2); "" for a fresh or a version-1 memo
    version: int = MEMO_VERSION  # the format it was decoded from (encoding always writes MEMO_VERSION)

    @classmethod
    def empty(cls, client_id: str, params: RRParameters, epoch: int = 0) -> PermanentMemo:
        if not isinstance(client_id, str) or not client_id or len(client_id.encode()) > 0xFFFF:
            raise InvalidParameters("client_id must be a non-empty string")
        if not isinstance(epoch, int) or not 0 <= epoch < 1 << 32:
            raise InvalidParameters("epoch must be in [0, 2^32)")
        return cls(client_id, params, epoch, np.zeros(0, np.uint64), np.zeros(0, bool), np.zeros(0, np.uint32))

    @classmethod
    def stored_or_empty(cls, data: bytes | None, client_id: str, params: RRParameters, *, released: bool,
                        where: str) -> PermanentMemo:
        """The memo a store holds (``data``, decoded and checked to be ``client_id``'s for ``params``),
        or an empty one when it holds none. A missing memo is refused (:class:`DecodeError`) when the
        ledger records releases (``released``): fresh permanent answers would spend the budget again.
        ``where`` names the memo's place for the message. Every store (files, Flower's node state)
        loads its memo through this one rule."""
        if data is None:
            if released:
                raise DecodeError(
                    f"{where} is missing but the ledger records releases: refusing to draw fresh permanent "
                    "answers (that would spend the budget again); restore the memo"
                )
            return cls.empty(client_id, params)
        memo = cls.decode(data)
        memo.check_owner(client_id, params)
        return memo

    @property
    def fresh(self) -> bool:
        return self.ledger_head == bytes(32)

    def with_anchor(self, ledger_seq: int, ledger_head_hex: str, ledger_line: str = "") -> PermanentMemo:
        return PermanentMemo(
            self.client_id, self.params, self.epoch, self.ids, self.answers, self.reports,
            ledger_seq, bytes.fromhex(ledger_head_hex), ledger_line,
        )

    def with_reports(self, reports: np.ndarray) -> PermanentMemo:
        """The same memo with other report counts (used to over-charge, never to under-charge)."""
        return PermanentMemo(
            self.client_id, self.params, self.epoch, self.ids, self.answers, np.asarray(reports, np.uint32),
            self.ledger_seq, self.ledger_head, self.ledger_line, self.version,
        )

    def __post_init__(self) -> None:
        for array in (self.ids, self.answers, self.reports):
            array.setflags(write=False)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def max_reports(self) -> int:
        return int(self.reports.max()) if len(self) else 0

    def check_owner(self, client_id: str, params: RRParameters) -> None:
        """``InvalidParameters`` unless this memo belongs to ``client_id`` and was drawn with ``params``."""
        if client_id != self.client_id:
            raise InvalidParameters(f"this memo belongs to client {self.client_id!r}, not {client_id!r}")
        mine = (self.params.p1, self.params.p2, self.params.p3, self.params.p4)
        if mine != (params.p1, params.p2, params.p3, params.p4):
            raise InvalidParameters(
                "this memo was drawn with other probabilities; changing them needs a new epoch (charged anew)"
            )

    def encode(self) -> bytes:
        client = self.client_id.encode()
        parts = [MEMO_MAGIC, bytes([MEMO_VERSION]), _U16.pack(len(client)), client, _U32.pack(self.epoch)]
        line = self.ledger_line.encode("utf-8")
        if len(line) > _MAX_LINE:
            raise InvalidParameters("ledger line too long for a memo")
        parts += [_U64.pack(self.ledger_seq), self.ledger_head, _U32.pack(len(line)), line]
        for p in (self.params.p1, self.params.p2, self.params.p3, self.params.p4):
            parts += [_U64.pack(p.numerator), _U64.pack(p.denominator)]
        parts += [
            _U64.pack(len(self)),
            self.ids.astype("<u8").tobytes(),
            np.packbits(self.answers, bitorder="little").tobytes(),
            self.reports.astype("<u4").tobytes(),
        ]
        body = b"".join(parts)
        return body + hashlib.sha256(body).digest()

    @classmethod
    def decode(cls, data: bytes) -> PermanentMemo:
        """Parse a memo; any damage is a :class:`DecodeError` (never an empty memo)."""
        try:
            return cls._decode(bytes(data))
        except DecodeError:
            raise
        except Exception as exc:  # noqa: BLE001 -- nothing but DecodeError may escape
            raise DecodeError(f"malformed memo: {exc}") from None

    @classmethod
    def _decode(cls, data: bytes) -> PermanentMemo:
        if len(data) < len(MEMO_MAGIC) + 33 or not data.startswith(MEMO_MAGIC):
            raise DecodeError("not a fedprivacy permanent-response memo")
        body, digest = data[:-32], data[-32:]
        if hashlib.sha256(body).digest() != digest:
            raise DecodeError("memo checksum mismatch (damaged or edited)")
        view = memoryview(body)
        pos = len(MEMO_MAGIC)
        version = int(view[pos])
        if version not in _READABLE_VERSIONS:
            raise DecodeError(f"unsupported memo version {version} (this library reads versions 1 and 2)")
        pos += 1

        def take(size: int) -> memoryview:
            nonlocal pos
            if pos + size > len(view):
                raise DecodeError("memo truncated")
            chunk = view[pos : pos + size]
            pos += size
            return chunk

        client_id = bytes(take(_U16.unpack(take(2))[0])).decode("utf-8")
        epoch = _U32.unpack(take(4))[0]
        ledger_seq = _U64.unpack(take(8))[0]
        ledger_head = bytes(take(32))
        ledger_line = ""
        if version >= 2:
            size = _U32.unpack(take(4))[0]
            if size > _MAX_LINE:
                raise DecodeError("memo ledger line too long")
            ledger_line = bytes(take(size)).decode("utf-8")
            if (ledger_line and ledger_head == bytes(32)) or "\n" in ledger_line:
                raise DecodeError("memo anchor and anchor line disagree")
        probabilities = []
        for _ in range(4):
            numerator, denominator = _U64.unpack(take(8))[0], _U64.unpack(take(8))[0]
            if denominator == 0:
                raise DecodeError("zero denominator")
            fraction = Fraction(numerator, denominator)
            if (fraction.numerator, fraction.denominator) != (numerator, denominator):
                raise DecodeError("probabilities must be in lowest terms")
            probabilities.append(fraction)
        try:
            p1, p2, p3, p4 = probabilities
            params = RRParameters(p1, p2, p3, p4, allow_insecure=True)
        except InvalidParameters as exc:
            raise DecodeError(f"invalid parameters in memo: {exc}") from None
        count = _U64.unpack(take(8))[0]
        if count > (len(view) - pos):
            raise DecodeError("memo truncated")
        ids = np.frombuffer(take(8 * count), dtype="<u8").astype(np.uint64)
        bits = np.unpackbits(np.frombuffer(take((count + 7) // 8), dtype=np.uint8), bitorder="little")
        if bits[count:].any():
            raise DecodeError("non-zero padding bits")
        answers = bits[:count]
        reports = np.frombuffer(take(4 * count), dtype="<u4").astype(np.uint32)
        if pos != len(view):
            raise DecodeError("trailing bytes in memo")
        if count > 1 and not bool(np.all(ids[1:] > ids[:-1])):
            raise DecodeError("memo ids are not strictly increasing")
        return cls(client_id, params, epoch, ids, answers.astype(bool), reports, ledger_seq, ledger_head, ledger_line, version)
