"""Run a round's clients on Ray: the in-process engine's server, with its clients in Ray actors.

``run_round(..., executor=RayExecutor())`` (``fedprivacy simulate --executor ray``) keeps the sans-I/O
server and the whole message flow of :mod:`fedprivacy.submodel.engine` in this process and hosts the
clients in ``actors`` Ray actors (default: one per CPU of the cluster, at most one per client), each
holding a contiguous shard of the clients. Every server message travels as its bytes to the actor of
its recipient, which answers with the client's reply bytes, so the round is the engine's round, equal
to the in-process one for the same seeds (``random_source`` is called in the actor, for each party
there). Messages go out in batches of ``batch`` per actor call, in the engine's order, and the replies
reach the server in that order. At the end each actor returns its clients' states; their ledgers and
memos replace the caller's (``DeviceState.store`` is used where the client runs: a path on the worker).

Cluster: with Ray already initialised (``ray.init(address=...)``) the executor uses that cluster;
otherwise it calls ``ray.init(address=address)`` itself -- ``address=None`` starts a local Ray,
``"auto"`` joins the cluster this machine belongs to, ``"ray://host:10001"`` a remote one.
Ray is imported only here (an optional dependency that ``flwr[simulation]`` brings). Clients with
identity keys (malicious mode) are refused: their keys are not shipped through Ray's object store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import InvalidParameters
from ..hazmat.prg import RandomSource
from ..submodel.client import DeviceState
from ..submodel.engine import ClientSummary, Delivery, InProcessClients, RoundDrops

__all__ = ["RayExecutor"]


class _Shard:
    """The clients of one actor (plain class; wrapped with ``ray.remote`` on first use)."""

    def __init__(self, states: dict[int, DeviceState], drops: RoundDrops,
                 random_source: Callable[[int], RandomSource] | None) -> None:
        self.clients: InProcessClients | None = InProcessClients(states, drops, random_source)

    def deliver(self, items: list[tuple[int, bytes | None]]) -> list[Delivery]:
        assert self.clients is not None
        return self.clients.deliver(items)

    def node_id(self) -> str:
        import ray

        return str(ray.get_runtime_context().get_node_id())

    def finish(self) -> dict[int, ClientSummary]:
        assert self.clients is not None
        summaries, self.clients = self.clients.finish(), None
        return summaries


class RayExecutor:
    """A client host factory for :func:`fedprivacy.submodel.engine.run_round` (see the module docstring)."""

    def __init__(self, address: str | None = None, actors: int | None = None, batch: int = 16,
                 actor_options: Mapping[str, Any] | None = None) -> None:
        if actors is not None and actors < 1:
            raise InvalidParameters("actors must be positive")
        if batch < 1:
            raise InvalidParameters("batch must be positive")
        self.address = address
        self.actors = actors
        self.batch = batch
        self.actor_options = dict(actor_options or {"num_cpus": 1})
        self.last_node_ids: list[str] = []  # the Ray node of each actor of the last round

    def __call__(self, states: Mapping[int, DeviceState], drops: RoundDrops,
                 random_source: Callable[[int], RandomSource] | None) -> _RayClients:
        if any(state.identity is not None for state in states.values()):
            # An identity key is the device's own: it is not shipped through Ray's object store.
            raise InvalidParameters("clients with identity keys (malicious mode) run in process, not on Ray")
        import ray

        if not ray.is_initialized():
            ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False)
        return _RayClients(ray, states, drops, random_source, self)


class _RayClients:
    def __init__(self, ray: Any, states: Mapping[int, DeviceState], drops: RoundDrops,
                 random_source: Callable[[int], RandomSource] | None, executor: RayExecutor) -> None:
        self._ray = ray
        parties = sorted(states)
        count = executor.actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
        count = max(1, min(count, len(parties)))
        actor = ray.remote(_Shard).options(**executor.actor_options)
        size = -(-len(parties) // count)
        self._shard_of: dict[int, int] = {}
        self._actors: list[Any] = []  # Ray actor handles
        for index in range(count):
            mine = parties[index * size:(index + 1) * size]
            if not mine:
                break
            self._shard_of.update(dict.fromkeys(mine, len(self._actors)))
            self._actors.append(actor.remote({p: states[p] for p in mine}, drops, random_source))
        self.batch = executor.batch * len(self._actors)  # each actor gets about ``executor.batch`` per call
        self.node_ids = ray.get([a.node_id.remote() for a in self._actors])  # where each shard runs
        executor.last_node_ids = list(self.node_ids)

    def deliver(self, items: list[tuple[int, bytes | None]]) -> list[Delivery]:
        by_actor: dict[int, list[int]] = {}
        for position, (recipient, _) in enumerate(items):
            by_actor.setdefault(self._shard_of[recipient], []).append(position)
        futures = {index: self._actors[index].deliver.remote([items[i] for i in positions])
                   for index, positions in by_actor.items()}
        results: list[Delivery | None] = [None] * len(items)
        for index, positions in by_actor.items():
            for position, delivery in zip(positions, self._ray.get(futures[index])):
                results[position] = delivery
        return [r for r in results if r is not None]

    def finish(self) -> dict[int, ClientSummary]:
        summaries: dict[int, ClientSummary] = {}
        for part in self._ray.get([a.finish.remote() for a in self._actors]):
            summaries.update(part)
        for a in self._actors:
            self._ray.kill(a)
        self._actors = []
        return summaries
