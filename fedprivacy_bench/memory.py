"""The one way the benches measure memory: the process's peak resident set (``getrusage``, every
POSIX system; Linux reports KiB, macOS bytes) and, where the kernel offers it (Linux ``/proc``), the
current resident set."""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Callable

__all__ = ["current_rss_reader", "peak_rss_bytes", "peak_rss_mib"]


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far, in bytes (the whole bench, workload included)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def peak_rss_mib() -> float:
    """:func:`peak_rss_bytes` in MiB (the unit of the benches' ``peak_rss_mb`` fields)."""
    return peak_rss_bytes() / 2**20


def current_rss_reader() -> Callable[[], int] | None:
    """A function reading this process's current resident set in bytes (Linux ``/proc/self/statm``),
    or None where the kernel does not offer it."""
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        with open("/proc/self/statm", "rb") as handle:
            handle.read()
    except (OSError, ValueError, AttributeError):
        return None

    def read() -> int:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * page

    return read
