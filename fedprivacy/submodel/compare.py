"""Baselines for ``fedprivacy simulate --compare`` (the paper's comparison, Sec. 6).

* plaintext submodel FL (FedSubAvg, no privacy: the server sees every real index set and update);
* full-model FedAvg with secure aggregation: every client downloads the whole model and uploads a
  full-length update through secure aggregation (the server sees only the sum), and each row is
  averaged over *all* clients' examples -- also those whose data never touched the row -- which is
  what makes plain FL learn submodels badly.
"""

from __future__ import annotations

import numpy as np

from ..hazmat.field import Modulus
from ..secagg import Quantizer, SecAggConfig, run_secagg_round
from .model import DenseHead, local_update
from .workload import ClientData

__all__ = ["fedavg_secure_round"]


def fedavg_secure_round(
    clients: list[ClientData],
    table: dict[int, np.ndarray],
    head: DenseHead,
    universe: int,
    clip: float = 1.0,
    max_samples: int = 10_000,
    dropout_fraction: float = 0.1,
) -> tuple[DenseHead, dict[str, float]]:
    """One full-model FedAvg round with secure aggregation, in place on ``table``; returns the new
    head and the per-client bytes moved (median over clients)."""
    width = head.weights.shape[0] + 1
    rows = np.arange(universe, dtype=np.uint64)
    dim = universe * width + width  # every row, then the dense head
    quantizer = Quantizer(Modulus.U64, clip, len(clients), max_weight=float(max_samples))
    by_id = {c.client_id: c for c in clients}
    config = SecAggConfig.create(sorted(by_id), dim + 1, Modulus.U64, dropout_fraction=dropout_fraction)

    def upload(party: int) -> np.ndarray:
        update = local_update(by_id[party], table, head)  # the whole model is available on the device
        vector = np.zeros(dim)
        where = np.searchsorted(rows, update.rows)
        flat = vector[: universe * width].reshape(universe, width)
        flat[where] = update.row_deltas
        vector[universe * width :] = update.dense_delta
        return quantizer.encode(vector, float(min(update.samples, max_samples)))

    report = run_secagg_round(config, upload)
    if report.result is None:
        assert report.aborted is not None
        raise report.aborted
    total, weight = quantizer.decode(report.result)
    if weight > 0:
        mean = total / weight
        for row, delta in zip(rows, mean[: universe * width].reshape(universe, width)):
            if delta.any():
                table[int(row)] = table[int(row)] + delta
        head = DenseHead.from_flat(head.flat() + mean[universe * width :])
    survivors = sorted(report.input_ids)
    upload_bytes = float(np.median([report.upload_bytes[p] for p in survivors]))
    download_bytes = float(np.median([report.download_bytes[p] for p in survivors])) + dim * 4
    return head, {"upload_bytes_per_client": upload_bytes, "download_bytes_per_client": download_bytes}
