"""ClientApp: each SuperNode trains fedprivacy's reference model on its own partition of the workload."""

from __future__ import annotations

from flwr.app import Context

from fedprivacy.adapters.flower import submodel_client_app
from fedprivacy.submodel.reference import ReferenceTrainer
from task import workload


def client_fn(context: Context) -> ReferenceTrainer:
    partition = int(context.node_config["partition-id"])
    partitions = int(context.node_config["num-partitions"])
    config = context.run_config
    data = workload(partitions, int(config["universe"]), int(config["items-per-user"]), int(config["seed"]))
    return ReferenceTrainer(data.clients[partition])


# Answers the secure submodel round's messages (train.fedprivacy_submodel); add your own
# @app.evaluate() or @app.query() functions to it as usual.
app = submodel_client_app(client_fn)
