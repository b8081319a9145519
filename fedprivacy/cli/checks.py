"""Argument checks in the user's terms: every bad value is reported as ``fedprivacy: error: OPTION must
be ..., got VALUE`` (exit status 2) before anything runs, never as a traceback from deep inside.

Converters (:func:`integer`, :func:`number`) run while argparse parses; :func:`refuse_ignored`,
:func:`writable_out_dir`, :func:`fits_in_memory` and friends run at the start of each verb, where
options can be checked against each other.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import InvalidParameters

__all__ = ["UsageError", "integer", "number", "fraction", "address", "party_ranges", "check", "refuse_ignored",
           "writable_out_dir",
           "readable_file", "fits_in_memory", "available_memory", "in_user_terms"]


class UsageError(InvalidParameters):
    """A bad command-line argument (exit status 2)."""


def _show(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.4g}"


def _ranged(kind: str, low: float | None, high: float | None, low_open: bool = False, high_open: bool = False) -> str:
    if low is not None and high is not None:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        return f"{kind} in {left}{_show(low)}, {_show(high)}{right}"
    if low is not None:
        return f"{kind} {'>' if low_open else '>='} {_show(low)}"
    assert high is not None
    return f"{kind} {'<' if high_open else '<='} {_show(high)}"


def integer(low: int | None = None, high: int | None = None):
    """An argparse ``type``: a whole number in [low, high]."""

    def convert(text: str) -> int:
        wanted = _ranged("an integer", low, high)
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value

    convert.__name__ = "integer"
    return convert


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False, high_open: bool = False):
    """An argparse ``type``: a finite real number in the range (nan and inf are refused)."""

    def convert(text: str) -> float:
        wanted = _ranged("a number", low, high, low_open, high_open)
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}") from None
        below = low is not None and (value <= low if low_open else value < low)
        above = high is not None and (value >= high if high_open else value > high)
        if not math.isfinite(value) or below or above:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value

    convert.__name__ = "number"
    return convert


def party_ranges(limit: int = 1 << 20):
    """An argparse ``type``: party ids as ``1-10,12,20-25`` (each in [1, 2^32 - 1], at most ``limit``
    of them, no id twice), returned sorted."""

    def convert(text: str) -> list[int]:
        wanted = "party ids like 1-10,12 (integers in [1, 4294967295], no id twice)"
        ids: list[int] = []
        for part in text.split(","):
            low_text, _, high_text = part.strip().partition("-")
            try:
                low = int(low_text, 10)
                high = int(high_text, 10) if high_text else low
            except ValueError:
                raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}") from None
            if not 1 <= low <= high <= (1 << 32) - 1 or len(ids) + high - low + 1 > limit:
                raise argparse.ArgumentTypeError(f"must be {wanted}, at most {limit} of them, got {text!r}")
            ids.extend(range(low, high + 1))
        if len(set(ids)) != len(ids):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        return sorted(ids)

    convert.__name__ = "party ids"
    return convert


def fraction(high: float = 1.0, *, high_open: bool = False):
    """A fraction of the clients in [0, high]."""
    return number(0.0, high, high_open=high_open)


def address(text: str) -> str:
    """An argparse ``type``: a cluster address, non-empty and without spaces or control characters."""
    if not text or any(c.isspace() or not c.isprintable() for c in text):
        raise argparse.ArgumentTypeError(f"must be an address without spaces (such as auto or ray://HOST:10001), got {text!r}")
    return text


def check(condition: bool, message: str) -> None:
    if not condition:
        raise UsageError(message)


def refuse_ignored(args: argparse.Namespace, names: Iterable[str], why: str) -> None:
    """Options that would be silently ignored are an error (``names``: attribute names; an option
    counts as given when it is not None and not False)."""
    given = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n, None) not in (None, False)]
    if given:
        raise UsageError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply {why}")


def writable_out_dir(option: str, value: str) -> Path:
    """``value`` names a directory that exists or can be created, and in which a file can be written:
    tried for real (creating the directory), since permission bits do not tell (root, read-only mounts)."""
    import tempfile

    path = Path(value)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} must name a directory, but {value} is a file")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UsageError(f"{option} {value}: cannot write there ({reason}{f': {exc.filename}' if exc.filename else ''})") from None
    return path


def readable_file(option: str, path: Path, what: str = "the file") -> None:
    if not path.is_file():
        raise UsageError(f"{option}: {what} not found: {path} does not exist or is not a file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{option}: {path} is not readable (permission denied)")
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise UsageError(f"{option}: cannot read {path} ({exc.strerror or exc})") from None


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now (Linux: MemAvailable), else physical memory."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def fits_in_memory(estimate: float, what: str) -> None:
    """Refuse a run whose rough peak-memory ``estimate`` (bytes) exceeds the memory available now."""
    available = available_memory()
    if available is not None and estimate > available:
        raise UsageError(
            f"{what} needs about {_size(estimate)} of memory, more than the {_size(available)} available; "
            "choose smaller sizes"
        )


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} PiB"  # pragma: no cover


def in_user_terms(message: str, names: dict[str, str]) -> str:
    """A library message with its parameter names replaced by the options that set them."""
    import re

    for internal, option in sorted(names.items(), key=lambda item: -len(item[0])):
        message = re.sub(rf"(?<![\w-]){re.escape(internal)}(?![\w])", option, message)
    return message
