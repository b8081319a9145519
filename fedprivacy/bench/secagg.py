"""``fedprivacy bench secagg``: one whole secure-aggregation round in process, timed per party.

The inputs are public test data (``numpy.random`` is fine here: nothing secret is drawn from it).
``limit_seconds`` is measured in the same run: the time to generate (k + 1) * D mask words with the
same AES-CTR keystream into a reused buffer and add each once -- the floor for one client's masking.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..hazmat.field import Modulus, dtype_of, modulus_value, word_bytes
from ..secagg import DropoutSchedule, DropStage, SecAggConfig, run_secagg_round

__all__ = ["SecAggBenchOptions", "run_secagg_bench", "masking_limit_seconds"]


@dataclass(frozen=True)
class SecAggBenchOptions:
    clients: int
    dim: int
    dropout: float
    drop_stage: DropStage = DropStage.UNMASK
    neighbours: int | None = None
    threshold: int | None = None
    full_graph: bool = False
    corrupt: float = 0.05
    modulus: Modulus = Modulus.U32
    seed: int = 0


def masking_limit_seconds(words_per_mask: int, masks: int, modulus: Modulus, repeats: int = 7) -> float:
    """Median time to generate ``masks`` keystreams of ``words_per_mask`` words and add each once."""
    dtype = dtype_of(modulus)
    accumulator = np.zeros(words_per_mask, dtype=dtype)
    keystream = np.empty(words_per_mask, dtype=dtype)
    out = memoryview(keystream).cast("B")
    zeros = bytes(words_per_mask * word_bytes(modulus))
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        for index in range(masks):
            key = index.to_bytes(16, "big")
            Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor().update_into(zeros, out)
            np.add(accumulator, keystream, out=accumulator)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def _plain_sum(vectors: list[np.ndarray], modulus: Modulus) -> np.ndarray:
    """The reference sum, computed independently of the protocol's field code, one vector at a time."""
    if modulus is Modulus.P61:
        total = np.zeros(vectors[0].shape[0], dtype=object)
        for vector in vectors:
            total = (total + vector.astype(object)) % modulus_value(modulus)
        return total.astype(np.uint64)
    total = np.zeros(vectors[0].shape[0], dtype=np.uint64)
    for vector in vectors:
        total += vector  # exact below 2^64 for u32 words (n < 2^32); numpy wraps mod 2^64 for u64
    return total.astype(dtype_of(modulus))


def run_secagg_bench(options: SecAggBenchOptions, progress: bool = True) -> dict[str, object]:
    party_ids = list(range(1, options.clients + 1))
    config = SecAggConfig.create(
        party_ids,
        options.dim,
        options.modulus,
        corrupt_fraction=options.corrupt,
        dropout_fraction=options.dropout,
        neighbours=options.neighbours,
        threshold=options.threshold,
        full_graph=options.full_graph,
    )
    rng = np.random.default_rng(options.seed)  # public benchmark data only
    high = modulus_value(options.modulus)
    inputs = {
        p: rng.integers(0, min(high, 1 << 63), options.dim, dtype=np.uint64).astype(dtype_of(options.modulus))
        for p in party_ids
    }
    dropped_count = int(round(options.dropout * options.clients))
    dropped = rng.choice(party_ids, size=dropped_count, replace=False)
    schedule = DropoutSchedule({int(p): options.drop_stage for p in dropped})
    if progress:
        print(
            f"secagg bench: n={options.clients} D={options.dim} k={config.neighbours} t={config.threshold} "
            f"{dropped_count} dropping before {options.drop_stage.value}",
            file=sys.stderr,
        )
    started = time.perf_counter()
    report = run_secagg_round(config, inputs, schedule)
    total = time.perf_counter() - started
    correct = False
    if report.result is not None:
        correct = bool(np.array_equal(report.result, _plain_sum([inputs[p] for p in report.input_ids], options.modulus)))
    survivors = [p for p in party_ids if p not in schedule.drops]
    limit = masking_limit_seconds(options.dim, config.neighbours + 1, options.modulus)
    masking = [report.client_masking_seconds[p] for p in survivors if p in report.client_masking_seconds]
    return {
        "correct": correct,
        "aborted": None if report.aborted is None else str(report.aborted),
        "clients": options.clients,
        "dim": options.dim,
        "dropout": options.dropout,
        "drop_stage": options.drop_stage.value,
        "modulus": options.modulus.name.lower(),
        "neighbours": config.neighbours,
        "threshold": config.threshold,
        "client_seconds_median": statistics.median(report.client_seconds[p] for p in survivors),
        "client_masking_seconds_median": statistics.median(masking) if masking else None,
        "server_seconds": report.server_seconds,
        "total_seconds": total,
        "upload_bytes_per_client": statistics.median(report.upload_bytes[p] for p in survivors),
        "limit_seconds": limit,
        "masking_over_limit": (statistics.median(masking) / limit) if masking else None,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
