"""The README's usage example runs and prints what it says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path


def test_readme_usage_example_runs():
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    code = re.search(r"## Usage\n\n```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) <= 14
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert out.getvalue().strip() == "[210 210 210 210]"


def test_readme_plug_in_example_runs():
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    code = re.search(r"## Plugging in your own model\n.*?```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) <= 32
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    union, participants, bias = out.getvalue().split()
    assert int(participants) == 8 and float(bias) == 0.1
    assert union == code.strip().splitlines()[-1].split("# ")[1].split()[0]
