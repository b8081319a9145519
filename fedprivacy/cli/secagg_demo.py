"""``fedprivacy simulate --mode secagg``: one secure-aggregation round of float updates."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from ..hazmat.field import Modulus
from .output import _emit


def secagg_demo_memory(clients: int, dim: int) -> float:
    """Rough peak bytes: each client's float update, quantized input and masked copy, plus the sums."""
    return float(clients * (dim + 1) * 8 * 4 + (dim + 1) * 8 * 8 + (64 << 20))


def _simulate_secagg(args: argparse.Namespace) -> int:
    from ..secagg import DropoutSchedule, Quantizer, SecAggConfig, SecAggStep, run_secagg_round

    if not args.quiet:
        print("fedprivacy simulate --mode secagg: one secure-aggregation round of float updates (quantized, weighted mean).",
              file=sys.stderr)
    party_ids = list(range(1, args.clients + 1))
    config = SecAggConfig.create(party_ids, args.dim + 1, Modulus.U32, dropout_fraction=0.2)
    quantizer = Quantizer(Modulus.U32, clip=2.0, num_clients=args.clients, max_weight=100.0)
    rng = np.random.default_rng(args.seed)  # synthetic public demo data
    updates = {p: rng.normal(0.0, 0.5, args.dim) for p in party_ids}
    weights = {p: float(rng.integers(1, 101)) for p in party_ids}
    stages = [SecAggStep.SHARE, SecAggStep.INPUT, SecAggStep.UNMASK]
    schedule = DropoutSchedule({party_ids[i]: stages[i % 3] for i in range(min(3, args.clients // 5))})
    rounding = _seeded(args.seed, "stochastic rounding")
    inputs = {p: quantizer.encode(updates[p], weights[p], random_bytes=rounding(p)) for p in party_ids}
    report = run_secagg_round(config, inputs, schedule, random_source=_seeded(args.seed, "protocol"))
    if report.result is None:
        print(f"round aborted: {report.aborted}", file=sys.stderr)
        return 1
    mean = quantizer.mean(report.result)
    counted = sorted(report.input_ids)
    clipped = {p: np.clip(updates[p], -2.0, 2.0) for p in counted}
    plain = sum(weights[p] * clipped[p] for p in counted) / sum(weights[p] for p in counted)
    _emit(
        {
            "seed": args.seed,
            "mode": "secure-aggregation",
            "clients": args.clients,
            "dim": args.dim,
            "neighbours": config.neighbours,
            "threshold": config.threshold,
            "dropped": {str(p): s.value for p, s in schedule.drops.items()},
            "summed_clients": len(counted),
            "max_abs_error_vs_plaintext_mean": float(np.max(np.abs(mean - plain))),
            "quantization_step": 1.0 / float(quantizer.scale or 1.0),
            "server_seconds": report.server_seconds,
        },
        args.json,
    )
    return 0


def _seeded(seed: int, purpose: str):
    """Each client's randomness for ``purpose``, derived from ``--seed`` (a simulation: the run repeats
    exactly); each purpose gets its own stream."""
    from ..hazmat.prg import DeterministicRandomness

    return lambda party: DeterministicRandomness(f"fedprivacy simulate --mode secagg/seed {seed}/{purpose}/client {party}")
