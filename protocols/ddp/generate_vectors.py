#!/usr/bin/env python3
"""Generate the distributed-DP vectors (protocols/ddp/vectors/*.json). See spec.md §3 and §4.

Every case records the exact random bytes the production code consumed (``random_hex``), so another
implementation can replay the randomness layout of spec.md §3 without our deterministic generator.

Usage: python protocols/ddp/generate_vectors.py [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from fedprivacy.ddp import DDPSettings, NoisePlan, privatize
from fedprivacy.hazmat.discrete_gaussian import bernoulli_exp, discrete_gaussian, discrete_gaussian_table, discrete_laplace
from fedprivacy.hazmat.prg import DeterministicRandomness

VECTOR_DIR = Path(__file__).resolve().parent / "vectors"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _vectorfile import write_or_check  # noqa: E402

CASES = [
    {"name": "gaussian-variance-1", "kind": "gaussian", "variance": 1, "count": 24},
    {"name": "gaussian-variance-10", "kind": "gaussian", "variance": 10, "count": 24},
    {"name": "gaussian-variance-2-30", "kind": "gaussian", "variance": 1 << 30, "count": 8},
    {"name": "table-variance-3", "kind": "table", "variance": 3, "count": 24},
    {"name": "table-variance-12345", "kind": "table", "variance": 12345, "count": 16},
    {"name": "laplace-scale-3", "kind": "laplace", "scale": 3, "count": 24},
    {"name": "bernoulli-exp-mixed", "kind": "bernoulli-exp", "numerators": [0, 1, 3, 7, 17, 40, 5, 1],
     "denominators": [7, 1, 7, 7, 7, 9, 1 << 62, 3]},
    {"name": "privatize-two-rows-one-dense", "kind": "privatize", "values": [[0.5, -2.0], [0.25, 0.125], [3.0, -3.0]],
     "weights": [1.0, 0.5, 0.75], "dense_rows": 1, "clip": 1.0, "l2_clip": 1.0, "noise_multiplier": 0.5,
     "sensitivity": 256, "row_variance": 16384, "dense_variance": 4096},
]


class Recording:
    """Wraps the deterministic source and keeps every byte handed out."""

    def __init__(self, seed: str) -> None:
        self.inner = DeterministicRandomness(seed)
        self.taken = bytearray()

    def __call__(self, size: int) -> bytes:
        data = self.inner(size)
        self.taken += data
        return data


def run_case(case: dict) -> dict:
    source = Recording(f"ddp-vectors/{case['name']}")
    kind = case["kind"]
    if kind == "gaussian":
        output = discrete_gaussian(case["variance"], case["count"], source).tolist()
    elif kind == "table":
        output = discrete_gaussian_table(case["variance"], case["count"], source).tolist()
    elif kind == "laplace":
        output = discrete_laplace(case["scale"], case["count"], source).tolist()
    elif kind == "bernoulli-exp":
        output = [bool(b) for b in bernoulli_exp(np.array(case["numerators"], dtype=np.uint64),
                                                 np.array(case["denominators"], dtype=np.uint64), source)]
    elif kind == "privatize":
        settings = DDPSettings(case["l2_clip"], case["noise_multiplier"], case["sensitivity"])
        output = privatize(np.array(case["values"]), np.array(case["weights"]), case["dense_rows"], case["clip"], settings,
                           NoisePlan(case["row_variance"], case["dense_variance"]), random_bytes=source).tolist()
    else:
        raise ValueError(kind)
    return {**case, "expected": {"output": output, "random_hex": bytes(source.taken).hex()}}


def main(argv: list[str] | None = None) -> int:
    return write_or_check(CASES, run_case, VECTOR_DIR, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
