"""ServerApp: secure submodel rounds with every connected SuperNode, then a test AUC per round."""

from __future__ import annotations

from logging import INFO

from flwr.app import Context
from flwr.common.logger import log
from flwr.serverapp import Grid, ServerApp

from fedprivacy.adapters.flower import SecureSubmodelWorkflow
from fedprivacy.submodel.server import RoundResult
from fedprivacy.submodel.settings import RoundSettings
from task import new_model, test_auc, workload

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    config = context.run_config
    universe, items, dim, seed = (int(config[k]) for k in ("universe", "items-per-user", "dim", "seed"))
    model = new_model(universe, dim, seed)
    # Public settings: the id space, a public cap on a client's index set (sizes the PSU table), the
    # secure sums' tolerance to dropouts.
    settings = RoundSettings(universe=universe, max_set_size=items, dropout_fraction=0.2)
    workflow = SecureSubmodelWorkflow(model, settings, first_round=int(config["first-round"]),
                                      min_nodes=int(config["min-nodes"]), timeout=float(config["stage-timeout"]))
    nodes = workflow.wait_for_nodes(grid)
    # Demo only: the workload is public and seeded, so the server can rebuild it to report test AUC.
    # A real deployment evaluates on the clients (their data never leaves them).
    data = workload(len(nodes), universe, items, seed)
    log(INFO, "test AUC before training: %.4f", test_auc(model, data))

    def report(round_index: int, result: RoundResult) -> None:
        log(INFO, "round %d: test AUC %.4f, union %d ids, mean |S''| %.1f, %d clients in the sums",
            round_index, test_auc(model, data), result.union.shape[0],
            sum(len(ids) for ids in result.chosen.values()) / max(1, len(result.chosen)), len(result.contributors))

    workflow.on_round = report
    workflow(grid, context)
