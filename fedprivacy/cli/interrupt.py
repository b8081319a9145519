"""Ctrl-C: a run stops at the next safe point (between protocol messages, never inside a file write)
and the command line prints one line saying what was kept and how to continue, exit status 130.

Inside :func:`deferred`, SIGINT stops the run at once until :func:`hold` is called (nothing written yet:
loading data, building the workload); after that it only sets a flag, and :func:`checkpoint` raises
:class:`KeyboardInterrupt` when the flag is set. Outside :func:`deferred`, Python's default applies.
:func:`note` sets the line to print.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import TypedDict


class _State(TypedDict):
    requested: bool
    held: bool
    note: str


_state: _State = {"requested": False, "held": False, "note": "nothing was written"}


def note(text: str) -> None:
    """What an interrupt now would leave behind, in one clause (printed after ``fedprivacy: interrupted:``)."""
    _state["note"] = text


def current_note() -> str:
    return _state["note"]


def hold() -> None:
    """From now on (within :func:`deferred`), Ctrl-C waits for the next :func:`checkpoint`."""
    _state["held"] = True


def forget_unhandled() -> None:
    """Clear CPython's record of an interrupt that escaped ``exec``'d source (a dataclass being built
    when Ctrl-C landed): the interpreter (3.11) keeps it although the interrupt was handled here, and
    kills itself with SIGINT at exit instead of returning 130. Running any source clears it."""
    exec("")  # noqa: S102 (no input: only resets the interpreter's flag)


def checkpoint() -> None:
    """A safe point: stop here if Ctrl-C was pressed."""
    if _state["requested"]:
        _state["requested"] = False
        raise KeyboardInterrupt


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT until the next :func:`checkpoint` (only in the main thread; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request(signum, frame) -> None:
        if not _state["held"]:
            raise KeyboardInterrupt
        _state["requested"] = True

    previous = signal.signal(signal.SIGINT, request)
    try:
        yield  # a Ctrl-C after the last checkpoint lets the run finish: it had nothing left to stop
    finally:
        signal.signal(signal.SIGINT, previous)
        _state["requested"] = _state["held"] = False
