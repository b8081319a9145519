"""The benches' worker processes for the server's unmasking (``--server-workers N``).

A bench with N > 1 runs its rounds inside :func:`fedprivacy.adapters.local_workers.local_workers`:
N fresh worker processes (``spawn``: their resident sets are their own), every one started, with the
unmasking code imported, before anything is timed (a long-lived server keeps its pool warm), closed
when the bench is done. With N = 1 nothing is started: the server unmasks in its own thread.

Memory: the workers' peak resident set is read after they exited and were waited for
(``getrusage(RUSAGE_CHILDREN)``: the largest peak of any waited-for child); the whole run's peak is
bounded above by the bench process's own peak plus N times that (:func:`worker_memory`).
"""

from __future__ import annotations

import resource
import sys

from fedprivacy.adapters.local_workers import local_workers as server_workers

from .memory import peak_rss_bytes

__all__ = ["server_workers", "worker_memory"]


def worker_memory(workers: int) -> dict[str, int]:
    """After the pool closed: the workers' largest peak resident set (``RUSAGE_CHILDREN``, 0 without
    workers) and the bound on the whole run's peak (this process's peak + workers x that)."""
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if workers > 1 else 0
    child = int(child if sys.platform == "darwin" else child * 1024)
    own = peak_rss_bytes()
    return {"workers_peak_rss_bytes": child,
            "peak_rss_with_workers_bytes": own + (workers * child if workers > 1 else 0)}
