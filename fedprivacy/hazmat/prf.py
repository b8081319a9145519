"""AES-128 as a pseudorandom function over 16-byte blocks (one ECB call over caller-built blocks).

Danger: this is not encryption. ECB applies AES to each block independently, so equal blocks give
equal outputs; that is the point here (a keyed hash of ids, random-access keystream over counter
blocks) and only safe when every block the caller builds is a distinct PRF input under a key used
for nothing else. Keys come from HKDF with a context naming the usage; never reuse one across usages.

One call covers a whole batch (OpenSSL through ``cryptography``, several GB/s), so callers build the
blocks in numpy and never loop per element.
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["BLOCK_BYTES", "OUTPUT_SLACK", "aes_blocks", "aes_blocks_into", "as_buffer", "prf_u64"]

BLOCK_BYTES = 16
OUTPUT_SLACK = BLOCK_BYTES - 1
"""Room :func:`aes_blocks_into` needs in ``out`` beyond ``len(data)`` (the library's requirement)."""


def aes_blocks(key: bytes, data: bytes) -> bytes:
    """AES-128 under ``key`` of each 16-byte block of ``data`` (a multiple of 16 bytes long)."""
    return Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(data)


def aes_blocks_into(key: bytes, data: memoryview | np.ndarray, out: memoryview | np.ndarray) -> None:
    """Write AES-128 under ``key`` of each 16-byte block of ``data`` into the first ``len(data)`` bytes
    of ``out``, which must hold at least ``len(data) + OUTPUT_SLACK`` bytes (reused buffers, no copy)."""
    Cipher(algorithms.AES(key), modes.ECB()).encryptor().update_into(as_buffer(data), as_buffer(out))


def as_buffer(value: memoryview | np.ndarray) -> memoryview:
    """A (contiguous) numpy array's memory as a memoryview, without copying; a memoryview as is."""
    return value if isinstance(value, memoryview) else value.data


def prf_u64(key: bytes, values: np.ndarray, usage: int) -> np.ndarray:
    """F_key(x, usage) for each uint64 ``x`` of ``values``: the first 64 bits (little-endian) of AES-128
    of the block (x as u64 little-endian || usage as u64 little-endian). Returns uint64 words."""
    blocks = np.empty((values.shape[0], 2), dtype="<u8")
    blocks[:, 0] = values
    blocks[:, 1] = usage
    out = aes_blocks(key, blocks.tobytes())
    return np.frombuffer(out, dtype="<u8").reshape(-1, 2)[:, 0].astype(np.uint64)
