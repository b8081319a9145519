"""The benches' worker processes for the server's unmasking (``--server-workers N``).

A bench with N > 1 starts a pool of N fresh worker processes (``spawn``: they inherit nothing of the
bench's memory, so their resident sets are their own), starts every worker and imports the
unmasking code in it before anything is timed (a long-lived server keeps its pool warm), hands the
server :class:`~fedprivacy.secagg.UnmaskingWorkers` over it, and closes it when the bench is done.
With N = 1 nothing is started: the server unmasks in its own thread (the library's default).

Memory: the workers' peak resident set is read after they exited and were waited for
(``getrusage(RUSAGE_CHILDREN)``: the largest peak of any waited-for child); the whole run's peak is
bounded above by the bench process's own peak plus N times that (:func:`worker_memory`).
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from fedprivacy.secagg import UnmaskingWorkers

from .memory import peak_rss_bytes

__all__ = ["server_workers", "worker_memory"]


def _warm(_: int) -> int:
    """Run in each worker once: import the unmasking code, and hold the worker long enough that every
    warm-up task lands on a worker of its own."""
    import fedprivacy.secagg.unmasking  # noqa: F401

    time.sleep(0.2)
    return os.getpid()


@contextmanager
def server_workers(count: int) -> Iterator[UnmaskingWorkers | None]:
    """``count`` local worker processes for the server's unmasking (None for 1: serial, no process)."""
    if count <= 1:
        yield None
        return
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn"))
    try:
        started = len(set(pool.map(_warm, range(count))))
        if started != count:
            print(f"server workers: {started} of {count} started before timing", file=sys.stderr)
        yield UnmaskingWorkers.from_executor(pool, count)
    finally:
        pool.shutdown(wait=True)


def worker_memory(workers: int) -> dict[str, int]:
    """After the pool closed: the workers' largest peak resident set (``RUSAGE_CHILDREN``, 0 without
    workers) and the bound on the whole run's peak (this process's peak + workers x that)."""
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if workers > 1 else 0
    child = int(child if sys.platform == "darwin" else child * 1024)
    own = peak_rss_bytes()
    return {"workers_peak_rss_bytes": child,
            "peak_rss_with_workers_bytes": own + (workers * child if workers > 1 else 0)}
