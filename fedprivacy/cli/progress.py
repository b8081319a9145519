"""A one-line progress display for the command line, without dependencies.

On a terminal the line is redrawn in place (carriage return): a bar over the steps, the current
stage, and a count within the step. Anywhere else (CI logs, pipes, files) each shown update is one
plain line, and counts within a step are thinned to a few lines per step, so a log stays readable.
Permanent lines (:meth:`Progress.log`) never tear the bar. Disabled, it writes nothing.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Progress"]


class Progress:
    """Progress over ``total`` steps, written to ``stream`` (default: ``sys.stderr``).

    ``tty`` forces the terminal or the plain style (default: ``stream.isatty()``); ``show_count``
    adds ``done/total`` after the bar (leave it out when the stage names the step); ``plain_marks``
    is how many lines a count within a step may print in the plain style (at even fractions of it);
    ``min_interval`` throttles redraws on a terminal when only that count moves.
    """

    def __init__(
        self,
        total: int,
        label: str = "",
        *,
        stream: TextIO | None = None,
        enabled: bool = True,
        tty: bool | None = None,
        width: int = 24,
        show_count: bool = True,
        plain_marks: int = 4,
        min_interval: float = 0.05,
    ) -> None:
        self.total = max(0, int(total))
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty()) if callable(isatty) else False
        self.tty = tty
        self.width = max(1, width)
        self.show_count = show_count
        self.plain_marks = max(1, plain_marks)
        self.min_interval = min_interval
        self.done = 0
        self.stage = ""
        self.sub: tuple[int, int, str] | None = None
        self._drawn = 0  # characters of the bar now on the terminal line
        self._last_draw = 0.0
        self._plain_mark: int | None = None
        self._within = 0.0  # the furthest sub count reached in the step under way, as a fraction

    # -- state ---------------------------------------------------------------------------------

    def update(
        self,
        done: int | None = None,
        *,
        stage: str | None = None,
        sub: tuple[int, int] | tuple[int, int, str] | None = None,
    ) -> None:
        """Move to ``done`` finished steps, name the ``stage`` under way, and/or set the count
        ``sub = (k, n[, unit])`` within the current step (a new step or stage clears it)."""
        moved = False
        if done is not None and done != self.done:
            self.done, self.sub, self._within, moved = min(max(0, int(done)), self.total), None, 0.0, True
        if stage is not None and stage != self.stage:
            self.stage, self.sub, moved = stage, None, True
        if sub is not None:
            k, n = max(0, int(sub[0])), max(int(sub[1]), int(sub[0]), 1)
            self.sub = (k, n, sub[2] if len(sub) > 2 else "")
            self._within = max(self._within, k / n)  # the bar never moves back within a step
        if not self.enabled:
            return
        if self.tty:
            now = time.monotonic()
            finished_sub = self.sub is not None and self.sub[0] >= self.sub[1]
            if moved or finished_sub or now - self._last_draw >= self.min_interval:
                self._draw(now)
            return
        mark = None if self.sub is None else self.sub[0] * self.plain_marks // self.sub[1]
        if moved or (mark is not None and mark > 0 and mark != self._plain_mark):
            self._plain_mark = mark
            self._write(self.render(bar=False) + "\n")

    def log(self, text: str) -> None:
        """A permanent line (a result, a warning); on a terminal the bar is drawn again below it."""
        if not self.enabled:
            return
        if self.tty and self._drawn:
            self._write("\r" + " " * self._drawn + "\r" + text + "\n")
            self._drawn = 0
            self._draw(time.monotonic())
        else:
            self._write(text + "\n")

    def close(self) -> None:
        """Take the bar off the terminal line (the plain style has nothing to take back)."""
        if self.enabled and self.tty and self._drawn:
            self._write("\r" + " " * self._drawn + "\r")
            self._drawn = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- drawing -------------------------------------------------------------------------------

    def fraction(self) -> float:
        """How far along, in [0, 1]: finished steps plus the furthest count within the step under way."""
        if self.total == 0:
            return 1.0
        return min(1.0, (self.done + (0.0 if self.done >= self.total else self._within)) / self.total)

    def render(self, bar: bool = True, max_width: int | None = None) -> str:
        """The line as text: ``label [####....] done/total | stage k/n unit``; past ``max_width``
        the stage is shortened, never the counts."""
        parts = [self.label] if self.label else []
        if bar:
            filled = round(self.fraction() * self.width)
            parts.append("[" + "#" * filled + "." * (self.width - filled) + "]")
        if self.show_count:
            parts.append(f"{self.done}/{self.total}")
        line = " ".join(parts)
        count = ""
        if self.sub is not None:
            k, n, unit = self.sub
            count = f"{k}/{n}{' ' + unit if unit else ''}"
        stage = self.stage
        if not (stage or count):
            return line
        line += " | " if line else ""
        if max_width is not None:
            room = max_width - len(line) - len(count) - (1 if stage and count else 0)
            if len(stage) > room:
                stage = stage[: max(0, room - 3)] + "..." if room > 3 else ""
        return line + " ".join(t for t in (stage, count) if t)

    def _draw(self, now: float) -> None:
        columns = shutil.get_terminal_size((80, 24)).columns
        line = self.render(max_width=max(20, columns - 1))[: max(20, columns - 1)]  # a wrapped line cannot be redrawn
        self._write("\r" + line + " " * max(0, self._drawn - len(line)))
        self._drawn = len(line)
        self._last_draw = now

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
