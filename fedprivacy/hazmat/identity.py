"""Ed25519 identity keys (from ``cryptography``): long-lived signing keys that name a party.

Keys and signatures travel as raw bytes (32-byte keys, 64-byte signatures), never PEM. Signing is
deterministic (RFC 8032), so a replayed run with the same key and message gives the same bytes.
``generate_signing_key`` draws the private key from the given randomness source (the OS CSPRNG by
default in the callers) so that test vectors can replay a run. Verification uses the strict checks
of the underlying library; a malformed key or signature verifies as ``False``, never raises.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import InvalidParameters
from .randomness import RandomSource

__all__ = [
    "SIGNING_KEY_BYTES",
    "VERIFY_KEY_BYTES",
    "SIGNATURE_BYTES",
    "generate_signing_key",
    "verify_key_of",
    "Signer",
    "Verifier",
]

SIGNING_KEY_BYTES = 32
VERIFY_KEY_BYTES = 32
SIGNATURE_BYTES = 64


def generate_signing_key(random_bytes: RandomSource) -> bytes:
    """A fresh Ed25519 private key (the 32-byte seed of RFC 8032)."""
    return random_bytes(SIGNING_KEY_BYTES)


def verify_key_of(signing_key: bytes) -> bytes:
    """The raw public (verification) key of a raw private key."""
    return Signer(signing_key).verify_key


class Signer:
    """One Ed25519 private key, parsed once."""

    __slots__ = ("_private", "verify_key")

    def __init__(self, signing_key: bytes) -> None:
        if not isinstance(signing_key, bytes) or len(signing_key) != SIGNING_KEY_BYTES:
            raise InvalidParameters("an Ed25519 private key is 32 bytes")
        self._private = Ed25519PrivateKey.from_private_bytes(signing_key)
        self.verify_key: bytes = self._private.public_key().public_bytes_raw()

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)


class Verifier:
    """One Ed25519 public key, parsed once (parsing costs a point decompression)."""

    __slots__ = ("_public", "key")

    def __init__(self, verify_key: bytes) -> None:
        if not isinstance(verify_key, bytes) or len(verify_key) != VERIFY_KEY_BYTES:
            raise InvalidParameters("an Ed25519 public key is 32 bytes")
        try:
            self._public = Ed25519PublicKey.from_public_bytes(verify_key)
        except ValueError as exc:
            raise InvalidParameters("not an Ed25519 public key") from exc
        self.key = verify_key

    def verify(self, signature: bytes, message: bytes) -> bool:
        if len(signature) != SIGNATURE_BYTES:
            return False
        try:
            self._public.verify(signature, message)
        except InvalidSignature:
            return False
        return True
