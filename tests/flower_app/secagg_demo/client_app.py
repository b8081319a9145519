"""The ClientApp: a NumPyClient whose fit returns its partition's fixed update; fedprivacy's mod."""

from __future__ import annotations

from flwr.app import Context
from flwr.client import NumPyClient
from flwr.clientapp import ClientApp

from fedprivacy.adapters.flower import secaggplus_mod  # was: from flwr.client.mod import secaggplus_mod

from .task import update, weight


class DemoClient(NumPyClient):
    def __init__(self, partition: int, dim: int, fail: bool) -> None:
        self.partition, self.dim, self.fail = partition, dim, fail

    def fit(self, parameters, config):
        if self.fail:
            raise RuntimeError(f"partition {self.partition} fails while training")
        return update(self.partition, self.dim), weight(self.partition), {"partition": self.partition}

    def evaluate(self, parameters, config):
        return 0.0, 1, {}


def make_app(dim: int | None = None, fail_partition: int | None = None) -> ClientApp:
    """The ClientApp; ``dim`` and ``fail_partition`` come from the run config unless given here."""

    def client_fn(context: Context):
        partition = int(context.node_config["partition-id"])
        size = dim if dim is not None else int(context.run_config["dim"])
        failing = fail_partition if fail_partition is not None else int(context.run_config["fail-partition"])
        return DemoClient(partition, size, partition == failing).to_client()

    return ClientApp(client_fn=client_fn, mods=[secaggplus_mod])


app = make_app()
