"""The benches' worker processes for the server's unmasking (``--server-workers N``).

A bench with N > 1 runs its rounds inside :func:`fedprivacy.adapters.local_workers.local_workers`:
N fresh worker processes (``spawn``: their resident sets are their own), every one started, with the
unmasking code imported, before anything is timed (a long-lived server keeps its pool warm), closed
when the bench is done. With N = 1 nothing is started: the server unmasks in its own thread.

Cores: on a shared machine N workers may not get N cores. :func:`parallel_capacity` measures, in
the same run, how many cores' worth of AES the pool's workers get together (N x one worker's time
over N workers' time for the same work each: about N on an idle machine, 1 when only one core is
free); the benches report it before and after their rounds.

Memory: the workers' peak resident set is read after they exited and were waited for
(``getrusage(RUSAGE_CHILDREN)``: the largest peak of any waited-for child); the whole run's peak is
bounded above by the bench process's own peak plus N times that (:func:`worker_memory`).
"""

from __future__ import annotations

import resource
import sys
import time

from fedprivacy.adapters.local_workers import local_workers as server_workers

from .memory import peak_rss_bytes

__all__ = ["parallel_capacity", "server_workers", "worker_memory"]


def _aes_seconds(_: int) -> float:
    """Wall seconds for 256 MiB of AES keystream (in one worker)."""
    import numpy as np

    from fedprivacy.hazmat.prf import OUTPUT_SLACK, aes_blocks_into

    block = np.zeros(1 << 24, dtype=np.uint8)
    out = np.empty(block.shape[0] + OUTPUT_SLACK, dtype=np.uint8)
    started = time.perf_counter()
    for _ in range(16):
        aes_blocks_into(bytes(16), block, out)
    return time.perf_counter() - started


def parallel_capacity(workers) -> float | None:
    """Cores' worth of AES the pool's N workers get together now: N x (one worker alone) / (N at once,
    slowest). None without workers."""
    if workers is None:
        return None
    alone = min(list(workers.map(_aes_seconds, [0])) + list(workers.map(_aes_seconds, [0])))
    together = max(workers.map(_aes_seconds, range(workers.workers)))
    return workers.workers * alone / together if together else None


def worker_memory(workers: int) -> dict[str, int]:
    """After the pool closed: the workers' largest peak resident set (``RUSAGE_CHILDREN``, 0 without
    workers) and the bound on the whole run's peak (this process's peak + workers x that)."""
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if workers > 1 else 0
    child = int(child if sys.platform == "darwin" else child * 1024)
    own = peak_rss_bytes()
    return {"workers_peak_rss_bytes": child,
            "peak_rss_with_workers_bytes": own + (workers * child if workers > 1 else 0)}
