"""The ServerApp: DefaultWorkflow with fedprivacy's SecAgg+ as the fit workflow; writes the result."""

from __future__ import annotations

import json

import numpy as np
from flwr.app import Context
from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common.recorddict_compat import arrayrecord_to_parameters
from flwr.server import ServerConfig
from flwr.server.compat import LegacyContext
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow
from flwr.serverapp import Grid, ServerApp

from fedprivacy.adapters.flower import SecAggPlusWorkflow  # was: from flwr.server.workflow import ...

from .task import shapes

RESULTS: list[dict] = []  # for in-process runs (run_simulation): the reports of this process's rounds


def make_app(nodes: int | None = None, dim: int | None = None) -> ServerApp:
    """The ServerApp; ``nodes`` and ``dim`` come from the run config unless given here."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        count = nodes if nodes is not None else int(context.run_config["num-nodes"])
        size = dim if dim is not None else int(context.run_config["dim"])
        initial = ndarrays_to_parameters([np.zeros(shape, dtype=np.float32) for shape in shapes(size)])
        strategy = FedAvg(
            fraction_fit=1.0,
            fraction_evaluate=0.0,
            min_fit_clients=count,
            min_available_clients=count,
            initial_parameters=initial,
        )
        legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=1), strategy=strategy)
        workflow = SecAggPlusWorkflow(num_shares=count, reconstruction_threshold=2, timeout=120)
        DefaultWorkflow(fit_workflow=workflow)(grid, legacy)
        arrays = parameters_to_ndarrays(arrayrecord_to_parameters(legacy.state.array_records["parameters"], True))
        outcome = workflow.last_round
        report = {
            "aggregate": [float(v) for a in arrays for v in np.ravel(a)],
            "error": None if outcome is None else outcome.error,
            "uploaded": 0 if outcome is None else len(outcome.uploaded),
            "total_weight": None if outcome is None else outcome.total_weight,
        }
        out = str(context.run_config.get("out", ""))
        if out:
            with open(out, "w", encoding="utf-8") as handle:
                json.dump(report, handle)
        RESULTS.append(report)

    return app


app = make_app()
