#!/usr/bin/env python3
"""Generate the randomized-response vectors (protocols/ldp/vectors/*.json). See spec.md §6.

Usage: python protocols/ldp/generate_vectors.py [--check]
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from fedprivacy.accounting import Ledger, participate
from fedprivacy.errors import BudgetExceeded
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.ldp import PermanentMemo, RRParameters

VECTOR_DIR = Path(__file__).resolve().parent / "vectors"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _vectorfile import write_or_check  # noqa: E402

CASES = [
    {
        "name": "cpp2-three-rounds",
        "description": "CPP2; the union grows, the real set stays; memo kept across rounds.",
        "parameters": ["15/16", "1/16", "15/16", "1/16"],
        "cap": None,
        "rounds": [
            {"union": [3, 5, 8, 13, 21, 34], "real": [5, 21]},
            {"union": [3, 5, 8, 13, 21, 34, 55, 89], "real": [5, 21]},
            {"union": [5, 8, 89, 144], "real": [5, 21]},
        ],
    },
    {
        "name": "asymmetric-non-power-of-two-with-cap",
        "description": "p = (1/2, 9/500, 3/4, 1/4): the common denominator 500 uses rejection sampling; "
        "the cap 1.2 admits one report and refuses the second (epsilon_2 = 1.475 > 2 epsilon_1).",
        "parameters": ["1/2", "9/500", "3/4", "1/4"],
        "cap": 1.2,
        "rounds": [
            {"union": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "real": [2, 3]},
            {"union": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "real": [2, 3]},
        ],
    },
]


def run_case(case: dict) -> dict:
    params = RRParameters(*case["parameters"])
    cap = math.inf if case["cap"] is None else case["cap"]
    ledger, header = Ledger.create(case["name"], cap)
    lines = [header]
    memo = PermanentMemo.empty(case["name"], params)
    outputs = []
    for index, round_spec in enumerate(case["rounds"]):
        try:
            part = participate(ledger, memo, params, round_spec["union"], round_spec["real"], index,
                               random_bytes=DeterministicRandomness(f"{case['name']}/round-{index}"))
        except BudgetExceeded:
            outputs.append(None)
            continue
        lines.append(part.ledger_line)
        memo = part.memo
        outputs.append([int(i) for i in part.randomized.chosen_ids])
    return {**case, "expected": {"chosen": outputs, "memo": memo.encode().hex(), "ledger": lines}}


def main(argv: list[str] | None = None) -> int:
    return write_or_check(CASES, run_case, VECTOR_DIR, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
