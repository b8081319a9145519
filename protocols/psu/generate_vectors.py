#!/usr/bin/env python3
"""Generate the private-set-union vectors (protocols/psu/vectors/*.json). See spec.md §8.

Usage: python protocols/psu/generate_vectors.py [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from fedprivacy.hazmat.field import P61
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.psu import PSUParameters, encode_set, peel

VECTOR_DIR = Path(__file__).resolve().parent / "vectors"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _vectorfile import write_or_check  # noqa: E402

CASES = [
    {
        "name": "small-universe-two-fields",
        "description": "universe 143534 (2 fields per cell), 3 clients with overlapping sets and a duplicate id.",
        "universe": 143534,
        "union_bound": 12,
        "sets": [[5, 77, 143533, 5], [77, 1000], [0, 1000, 42]],
    },
    {
        "name": "large-universe-three-fields",
        "description": "universe 2^61 - 1 (3 fields per cell: weight, weight*id, weight*checksum), 2 clients.",
        "universe": (1 << 61) - 1,
        "union_bound": 8,
        "sets": [[1, (1 << 60) + 3, 2**61 - 2], [1, 123456789012345]],
    },
]


def run_case(case: dict) -> dict:
    params = PSUParameters(case["universe"], case["union_bound"], b"fedprivacy psu test vectors 0001")
    sketches = [
        encode_set(params, ids, random_bytes=DeterministicRandomness(f"{case['name']}/client-{i}"))
        for i, ids in enumerate(case["sets"])
    ]
    total = np.zeros(params.vector_length, dtype=object)
    for sketch in sketches:
        total = (total + sketch.astype(object)) % P61
    summed = total.astype(np.uint64)
    result = peel(params, summed)
    return {
        **case,
        "parameters": {"encoded": params.encode().hex(), "cells": params.cells, "hashes": params.hashes,
                       "fields": params.fields},
        "expected": {
            "sketches": [s.astype("<u8").tobytes().hex() for s in sketches],
            "summed": summed.astype("<u8").tobytes().hex(),
            "success": result.success,
            "union": [int(i) for i in result.ids],
        },
    }


def main(argv: list[str] | None = None) -> int:
    return write_or_check(CASES, run_case, VECTOR_DIR, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
