"""The seven secure-aggregation messages and their canonical wire encoding.

Every message is a frozen dataclass with ``to_bytes()``; :func:`decode_message` turns untrusted bytes
into a message or raises :class:`DecodeError` (and nothing else). The sender / recipient fields name
parties; a transport must check that a message claiming ``sender`` really comes from that party.

| type | message         | direction       | stage                   |
|------|-----------------|-----------------|-------------------------|
| 1    | AdvertiseKeys   | client -> server| 0 advertise keys        |
| 2    | KeyBroadcast    | server -> client| 0 -> 1                  |
| 3    | ShareKeys       | client -> server| 1 share keys            |
| 4    | RoutedShares    | server -> client| 1 -> 2                  |
| 5    | MaskedInput     | client -> server| 2 masked input          |
| 6    | UnmaskRequest   | server -> client| 2 -> 3                  |
| 7    | UnmaskResponse  | client -> server| 3 unmasking             |

Malicious mode (``SecAggConfig.malicious``; ``protocols/secagg/spec.md`` §14) signs and checks:

| type | message                         | direction       | stage                   |
|------|---------------------------------|-----------------|-------------------------|
| 11   | AdvertiseKeys + signature       | client -> server| 0 advertise keys        |
| 12   | KeyBroadcast, signed entries    | server -> client| 0 -> 1                  |
| 13   | ConsistencyRequest              | server -> client| 2 -> consistency check  |
| 14   | ConsistencyResponse             | client -> server| consistency check       |
| 15   | UnmaskRequest + signatures      | server -> client| consistency check -> 3  |
| 17   | KeyBroadcast, jointly signed    | server -> client| 0 -> 1 (two sums, §14.8)|

Type 17 serves two sums advertised together (a submodel round's first PSU attempt and its rows'
sum): each entry also carries the party's keys of the partner sum, and the signature is over both
(``joint_advertisement_statement``); the partner sum's own broadcast is then unsigned (type 2).

(Type 0 is the config, 16 the config in malicious mode (10 its retired form), 8 and 10 a row plan,
9 a client's local state.)
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TypeVar

import numpy as np

from ..encoding import ProtocolCode, Reader, Writer, check_strictly_increasing
from ..errors import DecodeError
from ..hazmat.aead import TAG_BYTES
from ..hazmat.field import P61, Modulus, dtype_of, word_bytes
from ..hazmat.identity import SIGNATURE_BYTES
from ..hazmat.kex import KEY_BYTES
from .params import MAX_CLIENTS, MAX_DIM

__all__ = [
    "MessageType",
    "PeerKeys",
    "AdvertiseKeys",
    "KeyBroadcast",
    "ShareKeys",
    "RoutedShares",
    "MaskedInput",
    "UnmaskRequest",
    "UnmaskResponse",
    "ConsistencyRequest",
    "ConsistencyResponse",
    "Message",
    "PackedShares",
    "PackedCiphertexts",
    "PeerKeyTable",
    "PackedPeerKeys",
    "decode_message",
    "SECRET_LIMBS",
    "SHARE_PLAINTEXT_BYTES",
    "CIPHERTEXT_BYTES",
]

SECRET_BYTES = 32
SECRET_LIMBS = 5  # ceil(32 / 7) limbs of 56 bits
SHARE_PLAINTEXT_BYTES = 4 + 4 + 2 * SECRET_LIMBS * 8  # owner, holder, key-share limbs, seed-share limbs
CIPHERTEXT_BYTES = SHARE_PLAINTEXT_BYTES + TAG_BYTES
_LIMBS = struct.Struct(f">{SECRET_LIMBS}Q")
_U32 = struct.Struct(">I")
_P61_U64 = np.uint64(P61)


class MessageType(IntEnum):
    ADVERTISE_KEYS = 1
    KEY_BROADCAST = 2
    SHARE_KEYS = 3
    ROUTED_SHARES = 4
    MASKED_INPUT = 5
    UNMASK_REQUEST = 6
    UNMASK_RESPONSE = 7
    SIGNED_ADVERTISE_KEYS = 11
    SIGNED_KEY_BROADCAST = 12
    CONSISTENCY_REQUEST = 13
    CONSISTENCY_RESPONSE = 14
    SIGNED_UNMASK_REQUEST = 15
    JOINT_KEY_BROADCAST = 17  # (16 is the malicious config)


Limbs = tuple[int, ...]
_Pair = TypeVar("_Pair")


class _PackedPairs(Sequence[_Pair]):
    """A list of (id, value) pairs held as two read-only arrays (ids first), equal to the tuple of
    pairs it stands for (``==``, ``hash``, iteration, indexing), so code written for tuples keeps
    working; subclasses say how the arrays read back as pairs."""

    __slots__ = ()

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def pairs(self) -> tuple[_Pair, ...]:
        raise NotImplementedError

    def __len__(self) -> int:
        return int(self._arrays()[0].shape[0])

    def __getitem__(self, index):  # an int or a slice, as a tuple takes it
        return self.pairs()[index]

    def __iter__(self):
        return iter(self.pairs())

    def __eq__(self, other: object) -> bool:
        if type(other) is type(self):
            assert isinstance(other, _PackedPairs)
            return all(np.array_equal(mine, theirs) for mine, theirs in zip(self._arrays(), other._arrays()))
        if isinstance(other, (tuple, list)):
            return self.pairs() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.pairs())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.pairs()!r})"


class PackedShares(_PackedPairs[tuple[int, Limbs]]):
    """A decoded share list: the ``(owner, limbs)`` pairs of an :class:`UnmaskResponse`, held as two
    read-only arrays (``owners``, int64; ``limbs``, (count, SECRET_LIMBS) uint64) read from the wire
    in one step. It is sorted by owner and equals the tuple of pairs it stands for (``==``, ``hash``,
    iteration, indexing), so code written for tuples keeps working; the server reads the arrays."""

    __slots__ = ("owners", "limbs")

    def __init__(self, owners: np.ndarray, limbs: np.ndarray) -> None:
        self.owners = owners
        self.limbs = limbs

    def pairs(self) -> tuple[tuple[int, Limbs], ...]:
        return tuple(zip(self.owners.tolist(), map(tuple, self.limbs.tolist())))

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return self.owners, self.limbs


class PackedCiphertexts(_PackedPairs[tuple[int, bytes]]):
    """A decoded or routed ciphertext list: the ``(party, ciphertext)`` pairs of a :class:`ShareKeys` or
    :class:`RoutedShares`, held as a read-only int64 array of party ids (``parties``, strictly
    increasing) and a (count, CIPHERTEXT_BYTES) uint8 array (``ciphertexts``). It equals the tuple of
    pairs it stands for, so code written for tuples keeps working; the server routes the arrays."""

    __slots__ = ("parties", "ciphertexts")

    def __init__(self, parties: np.ndarray, ciphertexts: np.ndarray) -> None:
        self.parties = parties
        self.ciphertexts = ciphertexts

    def pairs(self) -> tuple[tuple[int, bytes], ...]:
        body = self.ciphertexts.tobytes()
        return tuple((party, body[at * CIPHERTEXT_BYTES:(at + 1) * CIPHERTEXT_BYTES])
                     for at, party in enumerate(self.parties.tolist()))

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return self.parties, self.ciphertexts


@dataclass(frozen=True, slots=True)
class PeerKeys:
    party_id: int
    channel_public_key: bytes
    mask_public_key: bytes
    signature: bytes = b""  # malicious mode: the party's Ed25519 signature over its advertisement
    # A jointly signed broadcast (type 17): the party's keys of the partner sum, covered by the signature.
    partner_channel_public_key: bytes = b""
    partner_mask_public_key: bytes = b""


class PeerKeyTable:
    """Every entry a server's key broadcasts list, each encoded once (``u32 id, C, S (, partner C,
    partner S) (, signature)``, the bytes :meth:`KeyBroadcast.to_bytes` writes for it) as one row of a
    (entries, width) byte array, by increasing party id. A broadcast lists a subset of its rows
    (:class:`PackedPeerKeys`) and is encoded by one gather of them: n broadcasts of n entries cost
    n^2 bytes copied, not n^2 Python objects joined. Entries of different sizes are refused."""

    __slots__ = ("entries", "ids", "rows", "layout")

    def __init__(self, entries: Sequence[PeerKeys]) -> None:
        ordered = tuple(sorted(entries, key=_party_id_of))
        ids = np.fromiter((p.party_id for p in ordered), dtype=np.int64, count=len(ordered))
        if ids.shape[0] > 1 and not bool(np.all(ids[1:] > ids[:-1])):
            raise ValueError("peer key entries name distinct parties")
        layouts = {_layout_of(p) for p in ordered}
        if len(layouts) > 1:
            raise ValueError("peer key entries of one table have one layout")
        self.layout = layouts.pop() if layouts else (KEY_BYTES, KEY_BYTES, 0, 0, 0)
        pack = _U32.pack
        body = b"".join([pack(p.party_id) + p.channel_public_key + p.mask_public_key + p.partner_channel_public_key
                         + p.partner_mask_public_key + p.signature for p in ordered])
        width = 4 + sum(self.layout)
        self.rows = np.frombuffer(body, dtype=np.uint8).reshape(len(ordered), width)
        self.entries = ordered
        self.ids = ids
        ids.setflags(write=False)

    def select(self, positions: np.ndarray) -> PackedPeerKeys:
        """The entries at ``positions`` (increasing row indices) as a broadcast's peer list."""
        positions = np.asarray(positions, dtype=np.int64)
        if positions.shape[0] and (int(positions[0]) < 0 or int(positions[-1]) >= self.ids.shape[0]
                                   or not bool(np.all(positions[1:] > positions[:-1]))):
            raise ValueError("a broadcast lists distinct rows of the table, in order")
        return PackedPeerKeys(self, positions)

    def all_but(self, position: int) -> PackedPeerKeys:
        """Every entry but the one at ``position`` (a full-graph broadcast: all other advertisers)."""
        return PackedPeerKeys(self, None, position)


class PackedPeerKeys(Sequence[PeerKeys]):
    """A server's key-broadcast peer list as rows of a shared :class:`PeerKeyTable` (no per-broadcast
    objects): equal to the tuple of :class:`PeerKeys` it stands for (``==``, ``hash``, iteration,
    indexing), so code written for tuples keeps working; :meth:`KeyBroadcast.to_bytes` copies its rows."""

    __slots__ = ("table", "_positions", "_skip")

    def __init__(self, table: PeerKeyTable, positions: np.ndarray | None, skip: int = -1) -> None:
        self.table = table
        self._positions = None if positions is None else np.asarray(positions, dtype=np.int64)
        self._skip = skip  # positions None: every row but this one (-1: every row)

    def positions(self) -> np.ndarray:
        if self._positions is not None:
            return self._positions
        every = np.arange(self.table.ids.shape[0], dtype=np.int64)
        return every if self._skip < 0 else np.delete(every, self._skip)

    def body(self) -> bytes:
        """The encoded entries, in order (one gather, or two slices for all rows but one)."""
        rows = self.table.rows
        if self._positions is None:
            if self._skip < 0:
                return rows.tobytes()
            return rows[: self._skip].tobytes() + rows[self._skip + 1 :].tobytes()
        return rows[self._positions].tobytes()

    def pairs(self) -> tuple[PeerKeys, ...]:
        entries = self.table.entries
        return tuple(entries[i] for i in self.positions().tolist())

    def __len__(self) -> int:
        if self._positions is not None:
            return int(self._positions.shape[0])
        return len(self.table.entries) - (self._skip >= 0)

    def __getitem__(self, index):  # an int or a slice, as a tuple takes it
        return self.pairs()[index]

    def __iter__(self):
        return iter(self.pairs())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (PackedPeerKeys, tuple, list)):
            return self.pairs() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.pairs())

    def __repr__(self) -> str:
        return f"PackedPeerKeys({self.pairs()!r})"


def _layout_of(peer: PeerKeys) -> tuple[int, int, int, int, int]:
    """The field sizes of an entry, in wire order after its id: C, S, partner C, partner S, signature."""
    return (len(peer.channel_public_key), len(peer.mask_public_key), len(peer.partner_channel_public_key),
            len(peer.partner_mask_public_key), len(peer.signature))


@dataclass(frozen=True, slots=True)
class AdvertiseKeys:
    sender: int
    channel_public_key: bytes
    mask_public_key: bytes
    signature: bytes = b""  # malicious mode only (type 11); empty: type 1, unchanged bytes

    def to_bytes(self) -> bytes:
        kind = MessageType.SIGNED_ADVERTISE_KEYS if self.signature else MessageType.ADVERTISE_KEYS
        w = Writer(ProtocolCode.SECAGG, kind).u32(self.sender)
        w.fixed(self.channel_public_key, KEY_BYTES).fixed(self.mask_public_key, KEY_BYTES)
        if self.signature:
            w.fixed(self.signature, SIGNATURE_BYTES)
        return w.finish()


@dataclass(frozen=True, slots=True)
class KeyBroadcast:
    recipient: int
    peers: tuple[PeerKeys, ...] | PackedPeerKeys  # sorted by party_id; all signed (type 12) or none (type 2)
    signed: bool = False
    joint: bool = False  # type 17: signed over this sum's and the partner sum's keys (signed is True)

    def to_bytes(self) -> bytes:
        if self.joint and not self.signed:
            raise ValueError("a jointly signed key broadcast is signed")
        kind = (MessageType.JOINT_KEY_BROADCAST if self.joint else
                MessageType.SIGNED_KEY_BROADCAST if self.signed else MessageType.KEY_BROADCAST)
        partner = KEY_BYTES if self.joint else 0
        if isinstance(self.peers, PackedPeerKeys) and self.peers.table.layout == (
                KEY_BYTES, KEY_BYTES, partner, partner, SIGNATURE_BYTES if self.signed else 0):
            # rows of the server's table, sorted and of this broadcast's layout: the same bytes in one copy
            body = self.peers.body()
            w = Writer(ProtocolCode.SECAGG, kind).u32(self.recipient).u32(len(self.peers))
            return w.fixed(body, len(body)).finish()
        peers = sorted(self.peers, key=_party_id_of)
        expected = (KEY_BYTES, KEY_BYTES, SIGNATURE_BYTES if self.signed else 0, partner, partner)
        sizes = {(len(p.channel_public_key), len(p.mask_public_key), len(p.signature), len(p.partner_channel_public_key),
                  len(p.partner_mask_public_key)) for p in peers}
        if sizes - {expected}:
            if not self.signed and any(p.signature for p in peers):
                raise ValueError("an unsigned key broadcast carries no signatures")
            raise ValueError(f"key broadcast entries are {KEY_BYTES}-byte keys, {expected[2]}-byte signatures and "
                             f"{partner}-byte partner keys")
        pack = _U32.pack  # one join over the entries: u32 id, C, S (, partner C, partner S) (, signature)
        body = b"".join([pack(p.party_id) + p.channel_public_key + p.mask_public_key + p.partner_channel_public_key
                         + p.partner_mask_public_key + p.signature for p in peers])
        w = Writer(ProtocolCode.SECAGG, kind).u32(self.recipient).u32(len(peers))
        return w.fixed(body, len(body)).finish()


@dataclass(frozen=True, slots=True)
class ShareKeys:
    sender: int
    ciphertexts: tuple[tuple[int, bytes], ...] | PackedCiphertexts  # (recipient, ciphertext), sorted by recipient

    def to_bytes(self) -> bytes:
        return _encode_routed(MessageType.SHARE_KEYS, self.sender, self.ciphertexts)


@dataclass(frozen=True, slots=True)
class RoutedShares:
    recipient: int
    ciphertexts: tuple[tuple[int, bytes], ...] | PackedCiphertexts  # (sender, ciphertext), sorted by sender

    def to_bytes(self) -> bytes:
        return _encode_routed(MessageType.ROUTED_SHARES, self.recipient, self.ciphertexts)


@dataclass(frozen=True, slots=True)
class MaskedInput:
    sender: int
    modulus: Modulus
    vector: np.ndarray  # read-only; dtype of the modulus
    # Set by the decoder only (never by __init__ or dataclasses.replace): every word was checked to be
    # below the modulus, so a receiver need not scan the vector again.
    in_range: bool = field(default=False, init=False, compare=False, repr=False)

    def to_bytes(self) -> bytes:
        w = Writer(ProtocolCode.SECAGG, MessageType.MASKED_INPUT).u32(self.sender).u8(self.modulus)
        w.u32(self.vector.shape[0])
        dtype = dtype_of(self.modulus).newbyteorder("<")
        return w.finish() + np.ascontiguousarray(self.vector, dtype=dtype).tobytes()


@dataclass(frozen=True, slots=True)
class ConsistencyRequest:
    """Malicious mode: U3, the parties whose masked input the server holds, for the recipient to sign."""

    recipient: int
    survivors: tuple[int, ...]

    def to_bytes(self) -> bytes:
        # Every survivor gets the same list: its encoding is computed once and shared.
        return _CONSISTENCY_HEADER + _U32.pack(self.recipient) + _encoded_id_list(tuple(self.survivors))


@dataclass(frozen=True, slots=True)
class ConsistencyResponse:
    """Malicious mode: the sender's Ed25519 signature over (config digest, U3)."""

    sender: int
    signature: bytes

    def to_bytes(self) -> bytes:
        w = Writer(ProtocolCode.SECAGG, MessageType.CONSISTENCY_RESPONSE).u32(self.sender)
        return w.fixed(self.signature, SIGNATURE_BYTES).finish()


@dataclass(frozen=True, slots=True)
class UnmaskRequest:
    recipient: int
    alive_ids: tuple[int, ...]  # neighbours whose self-mask seed shares are requested
    dropped_ids: tuple[int, ...]  # neighbours whose mask-key shares are requested
    # Malicious mode (type 15): the forwarded consistency signatures (signer, signature), by signer.
    signatures: tuple[tuple[int, bytes], ...] | None = None

    def to_bytes(self) -> bytes:
        kind = MessageType.UNMASK_REQUEST if self.signatures is None else MessageType.SIGNED_UNMASK_REQUEST
        w = Writer(ProtocolCode.SECAGG, kind).u32(self.recipient)
        w.id_list(self.alive_ids).id_list(self.dropped_ids)
        if self.signatures is not None:
            entries = sorted(self.signatures)
            if entries and {len(signature) for _, signature in entries} != {SIGNATURE_BYTES}:
                raise ValueError(f"signatures are {SIGNATURE_BYTES} bytes")
            pack = _U32.pack
            body = b"".join([pack(signer) + signature for signer, signature in entries])
            w.u32(len(entries)).fixed(body, len(body))
        return w.finish()


@dataclass(frozen=True, slots=True)
class UnmaskResponse:
    sender: int
    seed_shares: tuple[tuple[int, Limbs], ...] | PackedShares  # (owner, limbs), sorted by owner (decoded: packed)
    key_shares: tuple[tuple[int, Limbs], ...] | PackedShares

    def to_bytes(self) -> bytes:
        w = Writer(ProtocolCode.SECAGG, MessageType.UNMASK_RESPONSE).u32(self.sender)
        for shares in (self.seed_shares, self.key_shares):
            w.u32(len(shares))
            if isinstance(shares, PackedShares):  # sorted and in range: the same bytes in one step
                table = np.empty(len(shares), dtype=_SHARE_ENTRY)
                table["owner"], table["limbs"] = shares.owners, shares.limbs
                w.fixed(table.tobytes(), table.nbytes)
                continue
            for owner, limbs in sorted(shares):
                w.u32(owner).fixed(_LIMBS.pack(*limbs), _LIMBS.size)
        return w.finish()


def _party_id_of(peer: PeerKeys) -> int:
    return peer.party_id


_CONSISTENCY_HEADER = Writer(ProtocolCode.SECAGG, MessageType.CONSISTENCY_REQUEST).finish()


@functools.lru_cache(maxsize=4)
def _encoded_id_list(ids: tuple[int, ...]) -> bytes:
    """The canonical encoding of an id list (public ids only: safe to cache)."""
    return Writer(ProtocolCode.SECAGG, 0).id_list(ids).finish()[len(_CONSISTENCY_HEADER) :]


Message = (
    AdvertiseKeys
    | KeyBroadcast
    | ShareKeys
    | RoutedShares
    | MaskedInput
    | UnmaskRequest
    | UnmaskResponse
    | ConsistencyRequest
    | ConsistencyResponse
)


_ROUTED_ENTRY = struct.Struct(f">I{CIPHERTEXT_BYTES}s")  # u32 party id, ciphertext
_SHARE_ENTRY = np.dtype([("owner", ">u4"), ("limbs", ">u8", (SECRET_LIMBS,))])  # u32 owner, limbs


_ROUTED_RECORD = np.dtype([("party", ">u4"), ("ciphertext", np.uint8, (CIPHERTEXT_BYTES,))])  # the same entry


def _encode_routed(kind: MessageType, party: int, ciphertexts: tuple[tuple[int, bytes], ...] | PackedCiphertexts) -> bytes:
    if isinstance(ciphertexts, PackedCiphertexts):  # sorted, fixed width: the same bytes in one step
        table = np.empty(len(ciphertexts), dtype=_ROUTED_RECORD)
        table["party"], table["ciphertext"] = ciphertexts.parties, ciphertexts.ciphertexts
        w = Writer(ProtocolCode.SECAGG, kind).u32(party).u32(table.shape[0])
        return w.fixed(table.tobytes(), table.nbytes).finish()
    entries = sorted(ciphertexts)
    if any(len(ciphertext) != CIPHERTEXT_BYTES for _, ciphertext in entries):
        raise ValueError(f"share ciphertexts are {CIPHERTEXT_BYTES} bytes")
    pack = _ROUTED_ENTRY.pack  # one join over the entries: u32 id, ciphertext
    body = b"".join([pack(other, ciphertext) for other, ciphertext in entries])
    w = Writer(ProtocolCode.SECAGG, kind).u32(party).u32(len(entries))
    return w.fixed(body, len(body)).finish()


def _decode_routed(reader: Reader) -> tuple[int, PackedCiphertexts]:
    party = reader.u32()
    count = reader.count(MAX_CLIENTS, _ROUTED_ENTRY.size)
    table = np.frombuffer(reader.view(count * _ROUTED_RECORD.itemsize), dtype=_ROUTED_RECORD, count=count)
    parties = table["party"].astype(np.int64)
    _check_increasing(parties)
    ciphertexts = np.ascontiguousarray(table["ciphertext"])  # a copy: never a view of the caller's buffer
    parties.setflags(write=False)
    ciphertexts.setflags(write=False)
    return party, PackedCiphertexts(parties, ciphertexts)


def _check_increasing(ids: np.ndarray) -> None:
    """:func:`check_strictly_increasing` on an array, in one step."""
    if ids.shape[0] > 1 and not bool(np.all(ids[1:] > ids[:-1])):
        raise DecodeError("ids must be strictly increasing")


def _decode_share_list(reader: Reader) -> PackedShares:
    count = reader.count(MAX_CLIENTS, _SHARE_ENTRY.itemsize)
    table = np.frombuffer(reader.view(count * _SHARE_ENTRY.itemsize), dtype=_SHARE_ENTRY, count=count)
    limbs = table["limbs"].astype(np.uint64)  # native order, a copy
    if (limbs >= _P61_U64).any():
        raise DecodeError("share limbs out of range")
    owners = table["owner"].astype(np.int64)
    _check_increasing(owners)
    owners.setflags(write=False)
    limbs.setflags(write=False)
    return PackedShares(owners, limbs)


def decode_message(data: bytes | bytearray | memoryview) -> Message:
    """Decode untrusted bytes; raises :class:`DecodeError` only.

    A decoded :class:`MaskedInput` vector is a read-only view of ``data`` (no copy).
    """
    try:
        return _decode(data)
    except DecodeError:
        raise
    except Exception as exc:  # noqa: BLE001 -- defensive: no other exception type may escape a decoder
        raise DecodeError(f"malformed message: {type(exc).__name__}") from None


def _fixed_header(kind: MessageType) -> bytes:
    return Writer(ProtocolCode.SECAGG, kind).finish()


# The two fixed-size messages every party sends in malicious mode, read in one step (the general
# reader below accepts exactly the same bytes; anything else goes there and gets its precise error).
_FIXED_LAYOUTS = {
    _fixed_header(MessageType.CONSISTENCY_RESPONSE): (struct.Struct(f">I{SIGNATURE_BYTES}s"), ConsistencyResponse),
    _fixed_header(MessageType.SIGNED_ADVERTISE_KEYS): (
        struct.Struct(f">I{KEY_BYTES}s{KEY_BYTES}s{SIGNATURE_BYTES}s"), AdvertiseKeys),
}
_HEADER_BYTES = len(_fixed_header(MessageType.ADVERTISE_KEYS))


def _decode(data: bytes | bytearray | memoryview) -> Message:
    if type(data) is bytes:
        fixed = _FIXED_LAYOUTS.get(data[:_HEADER_BYTES])
        if fixed is not None and len(data) == _HEADER_BYTES + fixed[0].size:
            return fixed[1](*fixed[0].unpack_from(data, _HEADER_BYTES))
    reader = Reader(data, ProtocolCode.SECAGG)
    kind = reader.u8()
    message: Message
    if kind == MessageType.ADVERTISE_KEYS:
        message = AdvertiseKeys(reader.u32(), reader.fixed(KEY_BYTES), reader.fixed(KEY_BYTES))
    elif kind == MessageType.SIGNED_ADVERTISE_KEYS:
        message = AdvertiseKeys(reader.u32(), reader.fixed(KEY_BYTES), reader.fixed(KEY_BYTES), reader.fixed(SIGNATURE_BYTES))
    elif kind in (MessageType.KEY_BROADCAST, MessageType.SIGNED_KEY_BROADCAST):
        signed = kind == MessageType.SIGNED_KEY_BROADCAST
        recipient = reader.u32()
        count = reader.count(MAX_CLIENTS, 4 + 2 * KEY_BYTES + (SIGNATURE_BYTES if signed else 0))
        peers = tuple(
            PeerKeys(
                reader.u32(),
                reader.fixed(KEY_BYTES),
                reader.fixed(KEY_BYTES),
                reader.fixed(SIGNATURE_BYTES) if signed else b"",
            )
            for _ in range(count)
        )
        check_strictly_increasing([p.party_id for p in peers])
        message = KeyBroadcast(recipient, peers, signed)
    elif kind == MessageType.JOINT_KEY_BROADCAST:
        recipient = reader.u32()
        count = reader.count(MAX_CLIENTS, 4 + 4 * KEY_BYTES + SIGNATURE_BYTES)
        entries = []
        for _ in range(count):
            party, channel, mask = reader.u32(), reader.fixed(KEY_BYTES), reader.fixed(KEY_BYTES)
            partner_channel, partner_mask = reader.fixed(KEY_BYTES), reader.fixed(KEY_BYTES)
            entries.append(PeerKeys(party, channel, mask, reader.fixed(SIGNATURE_BYTES), partner_channel, partner_mask))
        check_strictly_increasing([p.party_id for p in entries])
        message = KeyBroadcast(recipient, tuple(entries), True, True)
    elif kind == MessageType.SHARE_KEYS:
        message = ShareKeys(*_decode_routed(reader))
    elif kind == MessageType.ROUTED_SHARES:
        message = RoutedShares(*_decode_routed(reader))
    elif kind == MessageType.MASKED_INPUT:
        sender = reader.u32()
        try:
            modulus = Modulus(reader.u8())
        except ValueError:
            raise DecodeError("unknown modulus") from None
        dim = reader.u32()
        if dim > MAX_DIM:
            raise DecodeError("vector length out of range")
        raw = reader.view(dim * word_bytes(modulus))
        vector = np.frombuffer(raw, dtype=dtype_of(modulus).newbyteorder("<"))
        vector.setflags(write=False)  # a view of the caller's buffer: never written through
        if modulus is Modulus.P61 and vector.size and int(vector.max()) >= P61:
            raise DecodeError("vector word out of range for the prime field")
        message = MaskedInput(sender, modulus, vector)
        object.__setattr__(message, "in_range", True)
    elif kind == MessageType.UNMASK_REQUEST:
        message = UnmaskRequest(reader.u32(), reader.id_list(MAX_CLIENTS), reader.id_list(MAX_CLIENTS))
    elif kind == MessageType.SIGNED_UNMASK_REQUEST:
        recipient, alive, dropped = reader.u32(), reader.id_list(MAX_CLIENTS), reader.id_list(MAX_CLIENTS)
        count = reader.count(MAX_CLIENTS, 4 + SIGNATURE_BYTES)
        signatures = tuple((reader.u32(), reader.fixed(SIGNATURE_BYTES)) for _ in range(count))
        check_strictly_increasing([signer for signer, _ in signatures])
        message = UnmaskRequest(recipient, alive, dropped, signatures)
    elif kind == MessageType.CONSISTENCY_REQUEST:
        message = ConsistencyRequest(reader.u32(), reader.id_list(MAX_CLIENTS))
    elif kind == MessageType.CONSISTENCY_RESPONSE:
        message = ConsistencyResponse(reader.u32(), reader.fixed(SIGNATURE_BYTES))
    elif kind == MessageType.UNMASK_RESPONSE:
        sender = reader.u32()
        message = UnmaskResponse(sender, _decode_share_list(reader), _decode_share_list(reader))
    else:
        raise DecodeError(f"unknown secure-aggregation message type {kind}")
    reader.done()
    return message
