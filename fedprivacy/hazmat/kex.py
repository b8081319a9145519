"""X25519 key agreement and HKDF-SHA256 key derivation (from ``cryptography``).

Keys travel as raw 32-byte strings, never PEM. ``generate_keypair`` draws the private key from the
given randomness source (the OS CSPRNG by default) so that test vectors can replay a run.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import InvalidParameters
from .randomness import RandomSource

__all__ = [
    "KEY_BYTES",
    "generate_keypair",
    "public_key",
    "canonical_public_key",
    "is_usable_public_key",
    "agree",
    "KeyAgreement",
    "hkdf",
]

KEY_BYTES = 32
_FIELD_PRIME = (1 << 255) - 19
_LOW_255_BITS = (1 << 255) - 1


def generate_keypair(random_bytes: RandomSource) -> tuple[bytes, bytes]:
    """A fresh X25519 key pair as (private_raw, public_raw)."""
    private_raw = random_bytes(KEY_BYTES)
    return private_raw, public_key(private_raw)


def public_key(private_raw: bytes) -> bytes:
    if len(private_raw) != KEY_BYTES:
        raise InvalidParameters("an X25519 private key is 32 bytes")
    return X25519PrivateKey.from_private_bytes(private_raw).public_key().public_bytes_raw()


def canonical_public_key(raw: bytes) -> bytes:
    """The one encoding of the X25519 public key ``raw`` stands for (RFC 7748, section 5).

    X25519 ignores the top bit of the last byte and reduces the u-coordinate mod 2^255 - 19, so up
    to four 32-byte strings name the same key. Compare keys (duplicate checks) only in this form.
    """
    if len(raw) != KEY_BYTES:
        raise InvalidParameters("an X25519 public key is 32 bytes")
    value = (int.from_bytes(raw, "little") & _LOW_255_BITS) % _FIELD_PRIME
    return value.to_bytes(KEY_BYTES, "little")


# A fixed private key: its clamped scalar is a multiple of the cofactor 8, so the exchange with a
# point gives the all-zero secret exactly when the point's order divides 8 (a low-order point).
_PROBE_KEY = X25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def is_usable_public_key(raw: bytes) -> bool:
    """Whether ``raw`` is a 32-byte X25519 public key not of low order (an exchange with it yields a
    non-zero secret). Every encoding of the low-order points (RFC 7748, section 6.1) answers False."""
    try:
        _PROBE_KEY.exchange(X25519PublicKey.from_public_bytes(raw))
    except ValueError:
        return False
    return True


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
        """The shared secret with one peer; ``InvalidParameters`` for a malformed or low-order key.
        Peer keys are parsed once per process and kept (public values: a server that agrees with the
        same survivors for every dropout parses each key once)."""
        if len(peer_public_raw) != KEY_BYTES:
            raise InvalidParameters("an X25519 public key is 32 bytes")
        try:
            return self._private.exchange(_parsed_public_key(bytes(peer_public_raw)))
        except ValueError as exc:
            raise InvalidParameters("invalid X25519 peer public key") from exc


@lru_cache(maxsize=1 << 14)
def _parsed_public_key(raw: bytes) -> X25519PublicKey:
    return X25519PublicKey.from_public_bytes(raw)


def hkdf(secret: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256(secret, salt, info) truncated to ``length`` bytes."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(secret)
