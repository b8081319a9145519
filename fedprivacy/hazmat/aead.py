"""AES-GCM with associated data. Failures are the opaque :class:`InvalidCiphertext`."""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import InvalidCiphertext

__all__ = ["NONCE_BYTES", "TAG_BYTES", "encrypt", "decrypt"]

NONCE_BYTES = 12
TAG_BYTES = 16


def encrypt(key: bytes, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """AES-GCM encryption. NEVER reuse a (key, nonce) pair."""
    return AESGCM(key).encrypt(nonce, plaintext, associated_data)


def decrypt(key: bytes, nonce: bytes, ciphertext: bytes, associated_data: bytes) -> bytes:
    """AES-GCM decryption; any failure (key, nonce, data, tag) raises :class:`InvalidCiphertext`."""
    try:
        return AESGCM(key).decrypt(nonce, bytes(ciphertext), associated_data)
    except (InvalidTag, ValueError):
        raise InvalidCiphertext() from None
