"""``simulate --compare``: the plaintext submodel FL and full-model FedAvg + secure aggregation baselines."""

from __future__ import annotations

import argparse

import numpy as np

from .ddp import privacy_note
from .evaluate import _evaluate


def _start_baselines(args: argparse.Namespace, workload, universe: int) -> dict:
    from ..submodel.demo import init_model

    baselines = {}
    for name in ("plaintext", "fedavg"):
        table, head = init_model(np.arange(universe, dtype=np.uint64), args.dim, seed=args.seed)
        baselines[name] = {"table": table, "head": head, "bytes": {}}
    return baselines


def _baseline_aucs(baselines: dict, workload) -> dict[str, float]:
    """The baselines' test AUC now, as the per-round row keys ``plaintext_test_auc``, ``fedavg_test_auc``."""
    return {
        f"{name}_test_auc": _evaluate(workload.clients, model["table"], model["head"])["test_auc"]
        for name, model in baselines.items()
    }


def _advance_baselines(baselines: dict, workload, universe: int, settings) -> None:
    from ..submodel.compare import fedavg_secure_round
    from ..submodel.demo import plaintext_round

    plain = baselines["plaintext"]
    plain["head"] = plaintext_round(workload.clients, plain["table"], plain["head"])
    width = plain["head"].weights.shape[0] + 1
    sizes = [np.unique(c.train_items).shape[0] for c in workload.clients]
    moved = float(np.median(sizes)) * width * 4 + width * 4  # its real rows and the head, as float32
    plain["bytes"] = {"upload_bytes_per_client": moved, "download_bytes_per_client": moved}
    full = baselines["fedavg"]
    full["head"], full["bytes"] = fedavg_secure_round(
        workload.clients, full["table"], full["head"], universe, settings.clip, settings.max_samples
    )


def _compare_table(report: dict, rows: list[dict], baselines: dict) -> list[dict]:
    last = rows[-1]
    return [
        {
            "method": "secure submodel FL (this library)",
            "test_auc": last["test_auc"],
            "upload_bytes_per_client": last["upload_bytes_per_client"],
            "download_bytes_per_client": last["download_bytes_per_client"],
            "privacy": f"server sees U, each S'' (eps_1 {report['epsilon_1']:.2f}, eps_inf {report['epsilon_inf']:.2f}), per-row sums"
                       + privacy_note(report),
        },
        {
            "method": "plaintext submodel FL",
            "test_auc": last["plaintext_test_auc"],
            **baselines["plaintext"]["bytes"],
            "privacy": "none: server sees every real index set and update",
        },
        {
            "method": "full-model FedAvg + secure aggregation",
            "test_auc": last["fedavg_test_auc"],
            **baselines["fedavg"]["bytes"],
            "privacy": "server sees only the sum; every client downloads the whole model",
        },
    ]
