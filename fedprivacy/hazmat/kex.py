"""X25519 key agreement (from ``cryptography``) and HKDF-SHA256 key derivation (RFC 5869 over the
standard library's HMAC: the same bytes as ``cryptography``'s HKDF, tested, at half the cost per call,
which matters at one derivation per pair and usage).

Keys travel as raw 32-byte strings, never PEM. ``generate_keypair`` draws the private key from the
given randomness source (the OS CSPRNG by default) so that test vectors can replay a run.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ..errors import InvalidParameters

__all__ = ["KEY_BYTES", "generate_keypair", "public_key", "agree", "KeyAgreement", "hkdf"]

KEY_BYTES = 32
RandomSource = Callable[[int], bytes]


def generate_keypair(random_bytes: RandomSource) -> tuple[bytes, bytes]:
    """A fresh X25519 key pair as (private_raw, public_raw)."""
    private_raw = random_bytes(KEY_BYTES)
    return private_raw, public_key(private_raw)


def public_key(private_raw: bytes) -> bytes:
    if len(private_raw) != KEY_BYTES:
        raise InvalidParameters("an X25519 private key is 32 bytes")
    return X25519PrivateKey.from_private_bytes(private_raw).public_key().public_bytes_raw()


def agree(private_raw: bytes, peer_public_raw: bytes) -> bytes:
    """The X25519 shared secret; ``InvalidParameters`` for a malformed or low-order peer key."""
    if len(peer_public_raw) != KEY_BYTES or len(private_raw) != KEY_BYTES:
        raise InvalidParameters("X25519 keys are 32 bytes")
    try:
        private = X25519PrivateKey.from_private_bytes(private_raw)
        return private.exchange(X25519PublicKey.from_public_bytes(peer_public_raw))
    except ValueError as exc:  # all-zero shared secret (low-order point)
        raise InvalidParameters("invalid X25519 peer public key") from exc


class KeyAgreement:
    """One X25519 private key, parsed once, agreeing with many peers (parsing costs as much as an exchange)."""

    __slots__ = ("_private",)

    def __init__(self, private_raw: bytes) -> None:
        if len(private_raw) != KEY_BYTES:
            raise InvalidParameters("an X25519 private key is 32 bytes")
        self._private = X25519PrivateKey.from_private_bytes(private_raw)

    def agree(self, peer_public_raw: bytes) -> bytes:
        """The shared secret with one peer; ``InvalidParameters`` for a malformed or low-order key."""
        if len(peer_public_raw) != KEY_BYTES:
            raise InvalidParameters("an X25519 public key is 32 bytes")
        try:
            return self._private.exchange(X25519PublicKey.from_public_bytes(peer_public_raw))
        except ValueError as exc:
            raise InvalidParameters("invalid X25519 peer public key") from exc


_HASH_BYTES = 32


def hkdf(secret: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256(secret, salt, info) truncated to ``length`` bytes (RFC 5869; an empty salt is the
    all-zero salt, as the RFC's default)."""
    if not 1 <= length <= 255 * _HASH_BYTES:
        raise InvalidParameters("HKDF-SHA256 output must be 1..8160 bytes")
    pseudorandom = hmac.digest(bytes(salt) or bytes(_HASH_BYTES), bytes(secret), "sha256")
    block = hmac.digest(pseudorandom, bytes(info) + b"\x01", "sha256")
    if length <= _HASH_BYTES:
        return block[:length]
    out = [block]
    for counter in range(2, -(-length // _HASH_BYTES) + 1):
        block = hmac.digest(pseudorandom, block + bytes(info) + bytes([counter]), "sha256")
        out.append(block)
    return b"".join(out)[:length]
