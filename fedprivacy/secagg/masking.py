"""Key derivation for masks and share encryption; secret limb packing.

All keys are HKDF-SHA256 outputs salted with the config digest (which names session, round,
modulus, dimension, graph parameters and party set), with an ``info`` that names the usage and the
parties, so no key is ever used for two purposes or two pairs:

* pair mask  u<->v: HKDF(X25519(s_u, S_v), info = tag("secagg", "pair-mask", min(u,v), max(u,v)))
* self mask  u:     HKDF(b_u,             info = tag("secagg", "self-mask", u))
* share key  u->v:  HKDF(X25519(c_u, C_v), info = tag("secagg", "share-enc", u, v)); AES-128-GCM
  with a zero nonce (the key encrypts exactly one message), AD = tag("secagg", "share-ad", digest,
  round, u, v).
"""

from __future__ import annotations

import struct

import numpy as np

from ..encoding import domain_tag
from ..errors import DecodeError
from ..hazmat import aead, shamir
from ..hazmat.field import P61
from ..hazmat.kex import agree, hkdf
from .messages import SECRET_BYTES, SECRET_LIMBS, SHARE_PLAINTEXT_BYTES
from .params import SecAggConfig

__all__ = [
    "pair_mask_key",
    "self_mask_key",
    "share_channel_key",
    "share_associated_data",
    "encrypt_share",
    "decrypt_share",
    "secret_to_limbs",
    "limbs_to_secret",
]

MASK_KEY_BYTES = 16
_ZERO_NONCE = bytes(aead.NONCE_BYTES)
_SHARE = struct.Struct(f">II{2 * SECRET_LIMBS}Q")


_PAIR_MASK_TAG = domain_tag("secagg", "pair-mask")
_TAG_INTEGERS = struct.Struct(">cIQcIQ")  # two integer parts of a domain tag: b"i", length 8, value


def pair_mask_key(config: SecAggConfig, mask_secret: bytes, party_a: int, party_b: int) -> bytes:
    """AES key of the pairwise mask between two parties from their X25519 mask agreement."""
    low, high = (party_a, party_b) if party_a < party_b else (party_b, party_a)
    if not 0 <= low <= high < 1 << 64:
        raise ValueError("domain tag integers must fit in 64 bits")
    # = domain_tag("secagg", "pair-mask", low, high), its constant prefix built once (a server
    # derives one key per pair it unmasks)
    info = _PAIR_MASK_TAG + _TAG_INTEGERS.pack(b"i", 8, low, b"i", 8, high)
    return hkdf(mask_secret, config.digest, info, MASK_KEY_BYTES)



def self_mask_key(config: SecAggConfig, seed: bytes, owner: int) -> bytes:
    return hkdf(seed, config.digest, domain_tag("secagg", "self-mask", owner), MASK_KEY_BYTES)


def share_channel_key(config: SecAggConfig, channel_secret: bytes, sender: int, recipient: int) -> bytes:
    return hkdf(channel_secret, config.digest, domain_tag("secagg", "share-enc", sender, recipient), MASK_KEY_BYTES)


def share_associated_data(config: SecAggConfig, sender: int, recipient: int) -> bytes:
    return domain_tag("secagg", "share-ad", config.digest, config.round_index, sender, recipient)


def encrypt_share(
    config: SecAggConfig, key: bytes, sender: int, recipient: int, key_limbs: np.ndarray, seed_limbs: np.ndarray
) -> bytes:
    plaintext = _SHARE.pack(sender, recipient, *(int(v) for v in key_limbs), *(int(v) for v in seed_limbs))
    return aead.encrypt(key, _ZERO_NONCE, plaintext, share_associated_data(config, sender, recipient))


def decrypt_share(
    config: SecAggConfig, key: bytes, sender: int, recipient: int, ciphertext: bytes
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(key-share limbs, seed-share limbs). ``InvalidCiphertext`` if forged; ``DecodeError`` if the
    authenticated plaintext is malformed (which only its sender could have caused)."""
    plaintext = aead.decrypt(key, _ZERO_NONCE, ciphertext, share_associated_data(config, sender, recipient))
    if len(plaintext) != SHARE_PLAINTEXT_BYTES:
        raise DecodeError("share plaintext has the wrong length")
    fields = _SHARE.unpack(plaintext)
    if fields[0] != sender or fields[1] != recipient:
        raise DecodeError("share names the wrong owner or holder")
    limbs = fields[2:]
    if any(v >= P61 for v in limbs):
        raise DecodeError("share limb out of range")
    return tuple(limbs[:SECRET_LIMBS]), tuple(limbs[SECRET_LIMBS:])


def secret_to_limbs(secret: bytes) -> np.ndarray:
    if len(secret) != SECRET_BYTES:
        raise ValueError("secrets are 32 bytes")
    return shamir.bytes_to_limbs(secret)


def limbs_to_secret(limbs: np.ndarray) -> bytes:
    """``ValueError`` if the limbs do not encode a 32-byte secret (inconsistent shares)."""
    return shamir.limbs_to_bytes(limbs, SECRET_BYTES)
