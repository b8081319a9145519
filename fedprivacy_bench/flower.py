"""``fedprivacy bench flower``: Flower's SecAgg+ and fedprivacy's drop-in, one round each, same inputs.

Both run in this process, one after the other, through the same in-memory grid
(:class:`~fedprivacy_bench.grid.InProcessGrid`: the ClientApp is called in process, every message
and reply deep-copied as a transport would): Flower's ``SecAggPlusWorkflow`` with its
``secaggplus_mod``, then ``fedprivacy.adapters.flower.SecAggPlusWorkflow`` with ours, each as the fit
workflow of ``DefaultWorkflow`` with ``FedAvg``, as a Flower app runs them. Both get the same
``num_shares = k + 1`` and threshold ``t``. Every node's ``fit`` returns a fixed vector of ``dim``
float32 values in [-1, 1] and a weight (``num_examples``) in [1, 100]; the dropped nodes
(``round(dropout * clients)``, the same for both) never answer from ``drop_stage`` on.

* ``*_server_seconds``: wall time of the fit workflow minus the time spent inside the ClientApps and
  copying messages (the grid's clocks); each run starts after a full garbage collection, so neither
  pays for the other's garbage;
* ``*_client_seconds_median``: per surviving node, the time inside its ClientApp (mod and app) over
  the whole round, median over the nodes;
* ``*_correct``: the round produced new global parameters within ``tolerance`` of the plaintext
  weighted mean of the nodes whose input belongs in the sum (all but those dropped before uploading);
  ``*_error`` says what the workflow logged and which Error replies came back, when any did.

Flower code is only touched through :mod:`fedprivacy_bench.comparison` (this module imports
no ``flwr``). The inputs are public benchmark data (``numpy.random`` is fine here).
"""

from __future__ import annotations

import gc
import statistics
import sys
from dataclasses import dataclass
from importlib.metadata import version

import numpy as np

from fedprivacy.errors import InvalidParameters
from fedprivacy.secagg import Adversary, check_graph_parameters, find_graph_parameters

from .memory import peak_rss_mib

__all__ = ["FlowerBenchOptions", "run_flower_bench", "DROP_STAGES", "TOLERANCE"]

DROP_STAGES = {  # the bench's stage names (as in `bench secagg`) -> the stage a dropped node never answers
    "advertise": "setup",
    "share": "share_keys",
    "input": "collect_masked_vectors",
    "unmask": "unmask",
}
TOLERANCE = 1e-3  # values are in [-1, 1]; both quantizations are far finer than this


@dataclass(frozen=True)
class FlowerBenchOptions:
    clients: int
    dim: int
    dropout: float = 0.0
    drop_stage: str = "unmask"
    neighbours: int | None = None
    threshold: int | None = None
    corrupt: float = 0.05
    seed: int = 0


def _graph(options: FlowerBenchOptions) -> tuple[int, int]:
    if options.neighbours is None:
        if options.threshold is not None:
            raise InvalidParameters("--threshold needs --neighbours")
        graph = find_graph_parameters(options.clients, options.corrupt, options.dropout, Adversary.SEMI_MALICIOUS)
    else:  # semi-malicious: what fedprivacy's nodes accept by default (both implementations get the same t)
        graph = check_graph_parameters(options.clients, options.neighbours, options.threshold, options.corrupt,
                                       options.dropout, Adversary.SEMI_MALICIOUS)
    return graph.neighbours, graph.threshold


def _summary(run, expected: np.ndarray, survivors: list[int]) -> dict[str, object]:
    result = run.parameters
    error = None
    if len(result) == 1 and result[0].shape == expected.shape:
        error = float(np.abs(result[0].astype(np.float64) - expected).max())
    problem = list(run.logged_errors)
    if run.error_replies:
        last_line = run.error_replies[0][1].strip().splitlines()[-1] if run.error_replies[0][1].strip() else "?"
        nodes = len({node for node, _ in run.error_replies})
        problem.append(f"{len(run.error_replies)} Error replies from {nodes} nodes, e.g. {last_line}")
    times = [run.client_seconds[node] for node in survivors]
    return {
        "server_seconds": run.server_seconds,
        "client_seconds_median": statistics.median(times) if times else None,
        "transport_seconds": run.transport_seconds,
        "correct": error is not None and error <= TOLERANCE,
        "max_abs_error": error,
        "error": "; ".join(problem) if problem else None,
    }


def run_flower_bench(options: FlowerBenchOptions, progress: bool = True) -> dict[str, object]:
    from .comparison import run_secure_round

    if options.drop_stage not in DROP_STAGES:
        raise InvalidParameters(f"drop stage must be one of {sorted(DROP_STAGES)}, got {options.drop_stage!r}")
    if not isinstance(options.dim, int) or options.dim < 1:
        raise InvalidParameters(f"dim must be a positive integer, got {options.dim!r}")
    n = options.clients
    neighbours, threshold = _graph(options)
    num_shares = neighbours + 1  # Flower counts the node's own share

    rng = np.random.default_rng(options.seed)  # public benchmark data
    node_ids: list[int] = []
    while len(node_ids) < n:  # random ids, as a SuperLink hands them out
        node = int(rng.integers(2, 1 << 62))
        if node not in node_ids:
            node_ids.append(node)
    updates = {node: rng.uniform(-1.0, 1.0, options.dim).astype(np.float32) for node in node_ids}
    weights = {node: int(rng.integers(1, 101)) for node in node_ids}
    dropped = frozenset(int(v) for v in rng.choice(node_ids, size=round(options.dropout * n), replace=False))
    stage = DROP_STAGES[options.drop_stage]
    in_sum = [node for node in node_ids if node not in dropped or options.drop_stage == "unmask"]
    expected = np.asarray(sum(weights[node] * updates[node].astype(np.float64) for node in in_sum) / sum(weights[node] for node in in_sum))
    survivors = [node for node in node_ids if node not in dropped]
    if progress:
        print(
            f"flower bench: n={n} D={options.dim} k={neighbours} (num_shares={num_shares}) t={threshold}, "
            f"{len(dropped)} nodes never answering from {stage} on",
            file=sys.stderr,
        )
    report: dict[str, object] = {
        "clients": n,
        "dim": options.dim,
        "dropout": options.dropout,
        "drop_stage": options.drop_stage,
        "dropped": len(dropped),
        "neighbours": neighbours,
        "num_shares": num_shares,
        "threshold": threshold,
        "tolerance": TOLERANCE,
        "flwr_version": version("flwr"),
    }
    for name in ("flower", "ours"):
        gc.collect()  # each run starts without the previous one's garbage
        extra = {"corrupt_fraction": options.corrupt, "dropout_fraction": options.dropout} if name == "ours" else None
        run = run_secure_round(
            name, updates, weights, num_shares=num_shares, threshold=threshold, dropped=dropped, drop_stage=stage,
            workflow_options=extra,
        )
        summary = _summary(run, expected, survivors)
        for key, value in summary.items():
            report[f"{name}_{key}"] = value
        if progress:
            print(f"  {name}: server {summary['server_seconds']:.3f} s, correct={summary['correct']}", file=sys.stderr)
    # A round that halted stopped early: its time is no basis for a ratio (the ratios are still printed).
    report["speedups_comparable"] = bool(report["flower_correct"] and report["ours_correct"])
    report["server_speedup"] = _ratio(report["flower_server_seconds"], report["ours_server_seconds"])
    report["client_speedup"] = _ratio(report["flower_client_seconds_median"], report["ours_client_seconds_median"])
    report["peak_rss_mb"] = peak_rss_mib()
    return report


def _ratio(a: object, b: object) -> float | None:
    if not isinstance(a, float) or not isinstance(b, float) or b <= 0:
        return None
    return a / b
