"""Worker processes of this machine for the server's unmasking: a ready-made pool.

:func:`local_workers` starts ``count`` fresh worker processes (``spawn``: they inherit nothing of the
caller's memory), makes them ignore Ctrl-C (the caller decides when to stop; a worker killed by the
terminal's interrupt would otherwise abort the round under way), starts every one of them and
imports the unmasking code in it before returning, and closes the pool on exit. What it yields goes
to ``run_round(..., server_workers=)``, ``SubmodelRoundServer(..., workers=)`` or
``SecAggServer(..., workers=)``.

The workers receive rebuilt secrets (``fedprivacy/secagg/unmasking.py``): this pool is the server's
own, on the server's machine; do not swap in a remote executor. As with any ``spawn`` pool, a script
that uses it must start its work under ``if __name__ == "__main__":`` (each worker imports the main
module).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import InvalidParameters
from ..secagg.unmasking import UnmaskingWorkers

__all__ = ["local_workers"]


def _quiet() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _warm(_: int) -> int:
    """Run once in each worker: import the unmasking code, and hold the worker long enough that every
    warm-up task lands on a worker of its own."""
    import fedprivacy.secagg.unmasking  # noqa: F401

    time.sleep(0.2)
    return os.getpid()


@contextmanager
def local_workers(count: int) -> Iterator[UnmaskingWorkers | None]:
    """``count`` worker processes for the server's unmasking, started and warm; None for ``count`` 1
    (the server's own thread, no process started)."""
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1024:
        raise InvalidParameters(f"the server's workers must be an integer in [1, 1024], got {count!r}")
    if count == 1:
        yield None
        return
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn"), initializer=_quiet)
    try:
        list(pool.map(_warm, range(count)))
        yield UnmaskingWorkers.from_executor(pool, count)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
