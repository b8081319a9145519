"""The progress line (terminal and plain styles)."""

from __future__ import annotations

import io

from fedprivacy.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_style_is_one_line_per_update_and_thins_counts():
    stream = io.StringIO()
    progress = Progress(2, "job", stream=stream, plain_marks=4)
    progress.update(stage="first step")
    for k in range(1, 101):
        progress.update(sub=(k, 100, "items"))
    progress.update(1, stage="second step")
    progress.log("a result")
    progress.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines == [
        "job 0/2 | first step",
        "job 0/2 | first step 25/100 items",
        "job 0/2 | first step 50/100 items",
        "job 0/2 | first step 75/100 items",
        "job 0/2 | first step 100/100 items",
        "job 1/2 | second step",
        "a result",
    ]


def test_terminal_style_redraws_in_place_and_logs_above_the_bar():
    stream = Terminal()
    progress = Progress(4, "job", stream=stream, width=8, min_interval=0.0)
    assert progress.tty
    progress.update(1, stage="working", sub=(1, 2, "parts"))
    assert stream.getvalue() == "\rjob [###.....] 1/4 | working 1/2 parts"  # (1 + 1/2) / 4 of the bar
    progress.log("done one")
    assert stream.getvalue().endswith("\rdone one\n\rjob [###.....] 1/4 | working 1/2 parts")
    progress.update(stage="later")  # a new stage within the step: the bar does not move back
    assert stream.getvalue().endswith("\rjob [###.....] 1/4 | later" + " " * 12)
    progress.close()
    assert stream.getvalue().endswith("\r" + " " * 26 + "\r")
    assert "\n" not in stream.getvalue().split("done one\n")[1]


def test_a_narrow_line_shortens_the_stage_not_the_counts():
    progress = Progress(3, "sim", stream=io.StringIO(), width=10, show_count=False)
    progress.update(stage="round 1/3: a rather long description of the stage", sub=(7, 90, "clients"))
    line = progress.render(max_width=50)
    assert len(line) <= 50 and line.endswith("... 7/90 clients") and line.startswith("sim [")


def test_disabled_progress_writes_nothing():
    stream = Terminal()
    progress = Progress(3, "job", stream=stream, enabled=False)
    progress.update(1, stage="x", sub=(1, 3))
    progress.advance()
    progress.log("hidden")
    progress.close()
    assert stream.getvalue() == "" and progress.done == 2
