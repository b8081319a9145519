"""One round of Flower's SecAgg+ or of fedprivacy's drop-in, in this process, timed (for the bench).

:func:`run_secure_round` builds what a Flower user would: a ``ClientApp`` of ``NumPyClient`` nodes
whose ``fit`` returns a fixed update and weight, wrapped in the implementation's mod, and a
``DefaultWorkflow`` with ``FedAvg`` and the implementation's SecAgg+ workflow as its fit workflow,
and runs one round through an :class:`~fedprivacy_bench.grid.InProcessGrid`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import Context, Message, RecordDict
from flwr.client import NumPyClient
from flwr.client.mod import secaggplus_mod as flower_mod
from flwr.clientapp import ClientApp
from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS as FLOWER_RECORD_KEY
from flwr.compat.common.recorddict_compat import arrayrecord_to_parameters
from flwr.server import ServerConfig
from flwr.server.compat import LegacyContext
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow as FlowerWorkflow
from flwr.server.workflow.constant import MAIN_PARAMS_RECORD
from flwr.serverapp import Grid

from fedprivacy.adapters.flower.constants import RECORD_KEY_CONFIGS, Key, Stage
from fedprivacy.adapters.flower.mod import secaggplus_mod
from fedprivacy.adapters.flower.workflow import SecAggPlusWorkflow

from .grid import InProcessGrid

__all__ = ["IMPLEMENTATIONS", "SecureRoundRun", "run_secure_round"]

IMPLEMENTATIONS = ("flower", "ours")


@dataclass
class SecureRoundRun:
    """The clocks and the result of one round (node ids are the grid's)."""

    server_seconds: float  # fit workflow wall time minus time inside ClientApps and copying messages
    client_seconds: dict[int, float]  # per node, time inside its ClientApp
    transport_seconds: float
    parameters: list[np.ndarray]  # the global parameters after the round (unchanged if it halted)
    logged_errors: list[str] = field(default_factory=list)  # ERROR records of the 'flwr' logger
    error_replies: list[tuple[int, str]] = field(default_factory=list)  # (node, reason) of Error replies


class _Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _stage_of(message: Message) -> str | None:
    if not message.has_content():
        return None
    records = message.content.config_records
    record = records.get(RECORD_KEY_CONFIGS) or records.get(FLOWER_RECORD_KEY)
    stage = None if record is None else record.get(Key.STAGE)
    return stage if isinstance(stage, str) and stage in Stage.all() else None


def run_secure_round(
    implementation: str,
    updates: Mapping[int, np.ndarray],
    weights: Mapping[int, int],
    *,
    num_shares: int,
    threshold: int,
    dropped: frozenset[int] = frozenset(),
    drop_stage: str = Stage.UNMASK,
    workflow_options: Mapping[str, Any] | None = None,  # keyword arguments of our SecAggPlusWorkflow
) -> SecureRoundRun:
    """One round over the nodes ``updates`` maps (node id -> that node's float32 update vector).

    ``implementation`` is ``"flower"`` (Flower's ``SecAggPlusWorkflow`` + ``secaggplus_mod``) or
    ``"ours"``; the nodes in ``dropped`` never answer from ``drop_stage`` (a stage name) on.
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    if drop_stage not in Stage.all():
        raise ValueError(f"drop_stage must be one of {Stage.all()}, got {drop_stage!r}")
    cut = Stage.all().index(drop_stage)

    def drop(node: int, message: Message) -> bool:
        stage = _stage_of(message) if node in dropped else None
        return stage is not None and Stage.all().index(stage) >= cut

    workflow: Callable[[Grid, Context], None]
    if implementation == "flower":
        workflow = FlowerWorkflow(num_shares=num_shares, reconstruction_threshold=threshold)
        mod = flower_mod
    else:
        workflow = SecAggPlusWorkflow(num_shares=num_shares, reconstruction_threshold=threshold, **(workflow_options or {}))
        mod = secaggplus_mod
    app = ClientApp(client_fn=_fixed_client_fn(updates, weights), mods=[mod])
    grid = InProcessGrid(app, {node: {"node": node} for node in updates}, drop=drop)
    dim = int(next(iter(updates.values())).shape[0])
    return _timed_round(grid, workflow, _legacy_context(len(updates), dim))


def _fixed_client_fn(updates: Mapping[int, np.ndarray], weights: Mapping[int, int]) -> Callable[[Context], Any]:
    """A ``client_fn`` whose ``NumPyClient`` returns the node's fixed update and weight from ``fit``."""

    class FixedClient(NumPyClient):
        def __init__(self, node: int) -> None:
            self.node = node

        def fit(self, parameters, config):  # NumPyClient's signature
            return [updates[self.node]], int(weights[self.node]), {}

    def client_fn(context: Context):
        return FixedClient(int(context.node_config["node"])).to_client()

    return client_fn


def _legacy_context(nodes: int, dim: int) -> LegacyContext:
    """The ServerApp's context for one round of ``FedAvg`` over every node, from zero parameters."""
    initial = ndarrays_to_parameters([np.zeros(dim, dtype=np.float32)])
    strategy = FedAvg(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=nodes,
        min_available_clients=nodes,
        initial_parameters=initial,
    )
    server_context = Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={})
    return LegacyContext(context=server_context, config=ServerConfig(num_rounds=1), strategy=strategy)


def _timed_round(grid: InProcessGrid, workflow: Callable[[Grid, Context], None], context: LegacyContext) -> SecureRoundRun:
    """Runs ``DefaultWorkflow`` with ``workflow`` as its fit workflow, timing the fit workflow alone."""
    wall: list[float] = []

    def timed_fit(grid_: Grid, context_: Context) -> None:
        grid.client_seconds = dict.fromkeys(grid.client_seconds, 0.0)
        grid.transport_seconds = 0.0
        started = time.perf_counter()
        workflow(grid_, context_)
        wall.append(time.perf_counter() - started)

    captured = _Captured()
    logger = logging.getLogger("flwr")
    logger.addHandler(captured)
    try:
        DefaultWorkflow(fit_workflow=timed_fit)(grid, context)
    finally:
        logger.removeHandler(captured)
    parameters = parameters_to_ndarrays(arrayrecord_to_parameters(context.state.array_records[MAIN_PARAMS_RECORD], True))
    return SecureRoundRun(
        server_seconds=wall[0] - sum(grid.client_seconds.values()) - grid.transport_seconds,
        client_seconds=dict(grid.client_seconds),
        transport_seconds=grid.transport_seconds,
        parameters=parameters,
        logged_errors=list(dict.fromkeys(captured.messages)),
        error_replies=list(grid.error_replies),
    )
