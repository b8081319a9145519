"""Shared by the vector generators: write every case's JSON, or (--check) report stale files."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path


def write_or_check(cases: list[dict], run_case: Callable[[dict], dict], directory: Path, argv: list[str] | None,
                   description: str | None) -> int:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help="compare with the stored vectors instead of writing")
    args = parser.parse_args(argv)
    directory.mkdir(parents=True, exist_ok=True)
    stale = []
    for case in cases:
        text = json.dumps(run_case(case), indent=1, sort_keys=True) + "\n"
        path = directory / f"{case['name']}.json"
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print("stale vectors: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0
