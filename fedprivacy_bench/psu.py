"""``fedprivacy bench psu``: the whole private set union in process, checked against the plain union.

Client sets are public synthetic data drawn uniformly from the universe (numpy.random is fine for
them); weights, keys and masks come from the library's CSPRNG as in production. ``--bloom-universe``
also runs the randomized-Bloom-filter variant on the same clients' sets re-drawn from a universe of
that size, decoded by scanning the whole universe, to compare.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

import numpy as np

from fedprivacy.hazmat.field import Modulus
from fedprivacy.psu import BloomParameters, PSUParameters, decode_bloom, encode_bloom, run_psu_round
from fedprivacy.secagg import DropoutSchedule, SecAggConfig, SecAggStep, run_secagg_round

from .memory import peak_rss_mib

__all__ = ["run_psu_bench"]


def _sets(rng: np.random.Generator, clients: int, items: int, universe: int) -> dict[int, np.ndarray]:
    return {p: rng.integers(0, universe, items, dtype=np.uint64) for p in range(1, clients + 1)}


def _schedule(rng: np.random.Generator, clients: int, dropout: float, stage: SecAggStep) -> DropoutSchedule:
    dropped = rng.choice(np.arange(1, clients + 1), size=round(dropout * clients), replace=False)
    return DropoutSchedule({int(p): stage for p in dropped})


def run_psu_bench(
    clients: int, items: int, universe: int, dropout: float, drop_stage: SecAggStep,
    bloom_universe: int | None = None, neighbours: int | None = None, seed: int = 0, progress: bool = True,
) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    sets = _sets(rng, clients, items, universe)
    schedule = _schedule(rng, clients, dropout, drop_stage)
    params = PSUParameters.create(universe, min(clients * items, universe))
    party_ids = sorted(sets)

    def config(p: PSUParameters) -> SecAggConfig:
        return SecAggConfig.create(party_ids, p.vector_length, Modulus.P61, dropout_fraction=max(dropout, 0.05),
                                   neighbours=neighbours)

    if progress:
        print(f"psu bench: n={clients} items={items} universe={universe} table={params.cells} cells x "
              f"{params.fields} fields, {len(schedule.drops)} dropping before {drop_stage.value}", file=sys.stderr)
    started = time.perf_counter()
    result = run_psu_round(sets, params, config, schedule)
    total = time.perf_counter() - started
    report = result.reports[-1]
    truth = np.unique(np.concatenate([sets[p] for p in result.contributors]))
    survivors = [p for p in party_ids if p not in schedule.drops]
    # The server's share: secure aggregation (receive, sum, unmask) plus decoding.
    out: dict[str, Any] = {
        "correct": bool(np.array_equal(truth, result.union)),
        "union_size": int(result.union.shape[0]),
        "clients": clients,
        "items": items,
        "universe": universe,
        "dropout": dropout,
        "drop_stage": drop_stage.value,
        "attempts": result.attempts,
        "cells": result.params.cells,
        "hashes": result.params.hashes,
        "fields": result.params.fields,
        "upload_bytes_per_client": statistics.median(report.upload_bytes[p] for p in survivors),
        "client_encode_seconds_median": statistics.median(result.client_encode_seconds.values()),
        "client_seconds_median": statistics.median(
            report.client_seconds[p] + result.client_encode_seconds.get(p, 0.0) for p in survivors
        ),
        "secagg_server_seconds": sum(r.server_seconds for r in result.reports),
    }
    peel_started = time.perf_counter()
    from fedprivacy.psu import PSUServer

    assert report.result is not None  # run_psu_round raises when its last attempt aborts
    PSUServer(result.params).decode(report.result)
    peel_seconds = time.perf_counter() - peel_started
    out["decode_seconds"] = peel_seconds
    out["server_seconds"] = out["secagg_server_seconds"] + peel_seconds
    out["total_seconds"] = total
    if bloom_universe:
        out.update(_bloom_comparison(rng, clients, items, bloom_universe, schedule, party_ids, progress))
    out["peak_rss_mb"] = peak_rss_mib()
    return out


def _bloom_comparison(rng, clients, items, universe, schedule, party_ids, progress) -> dict[str, object]:
    sets = _sets(rng, clients, items, universe)
    params = BloomParameters(universe, clients * items, rng.bytes(32), false_positive_rate=1e-6)
    if progress:
        print(f"bloom variant: universe={universe} bits={params.bits} hashes={params.hashes}, scanning", file=sys.stderr)
    config = SecAggConfig.create(party_ids, params.vector_length, Modulus.P61, dropout_fraction=0.2)
    report = run_secagg_round(config, lambda p: encode_bloom(params, sets[p]), schedule)
    started = time.perf_counter()
    if report.result is None:
        assert report.aborted is not None
        raise report.aborted
    members = decode_bloom(params, report.result)
    scan = time.perf_counter() - started
    truth = np.unique(np.concatenate([sets[p] for p in report.input_ids]))
    return {
        "bloom_universe": universe,
        "bloom_upload_bytes_per_client": statistics.median(report.upload_bytes[p] for p in report.input_ids),
        "bloom_scan_seconds": scan,
        "bloom_server_seconds": report.server_seconds + scan,
        "bloom_missing": int(np.setdiff1d(truth, members).shape[0]),
        "bloom_false_positives": int(np.setdiff1d(members, truth).shape[0]),
    }
