"""The progress line (terminal and plain styles) and the report's plots."""

from __future__ import annotations

import io

import pytest

from fedprivacy.cli.progress import Progress
from fedprivacy.cli.plots import PLOT_HINT, PlotsUnavailable, write_plots


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
    progress.update(2)
    progress.log("hidden")
    progress.close()
    assert stream.getvalue() == "" and progress.done == 2


def _report(rounds: int = 3, compare: bool = False) -> dict:
    rows = [{"round": 0, "test_auc": 0.5, "test_loss": 0.69}]
    for r in range(1, rounds + 1):
        rows.append({"round": r, "test_auc": 0.5 + 0.03 * r, "test_loss": 0.69 - 0.01 * r,
                     "epsilon_spent_max": 2.7 - 0.7 / r, "epsilon_spent_median": 2.6 - 0.7 / r,
                     "epsilon_spent_min": 0.0 if r == 1 else 2.0})
    if compare:
        for row in rows:
            row["plaintext_test_auc"] = row["test_auc"] + 0.01
            row["fedavg_test_auc"] = row["test_auc"] - 0.01
    return {"clients": 10, "dim": 4, "dataset": "synthetic", "parameters": {"p1": "15/16"},
            "epsilon_1": 2.02, "epsilon_inf": 2.71, "rounds": rows}


@pytest.mark.parametrize("compare", [False, True])
def test_plots_are_png_files(tmp_path, compare):
    paths = write_plots(_report(compare=compare), tmp_path)
    assert [p.name for p in paths] == ["auc.png", "epsilon.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots_accept_an_infinite_epsilon_and_no_rounds(tmp_path):
    report = _report(rounds=0)
    report["epsilon_inf"] = float("inf")
    assert len(write_plots(report, tmp_path)) == 2


def test_plots_without_matplotlib_raise_the_hint(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    with pytest.raises(PlotsUnavailable, match=r"pip install 'fedprivacy\[plot\]'") as caught:
        write_plots(_report(), tmp_path)
    assert str(caught.value) == PLOT_HINT and isinstance(caught.value, ImportError)
    assert list(tmp_path.iterdir()) == []
