"""``InProcessGrid``: a Flower ``Grid`` that runs a ClientApp in the ServerApp's own process.

Every message is deep-copied on its way to the node and the reply on its way back, as a transport
would copy them, and each node has its own ``Context`` that persists across messages (as a SuperNode
keeps it). A node that ``drop`` says is gone for a message simply never replies; an exception in the
ClientApp becomes an ``Error`` reply (``CLIENT_APP_RAISED_EXCEPTION``), as the SuperNode's runtime
reports it. Delivery is synchronous, so ``send_and_receive`` returns at once with every reply there
will ever be: for a workflow that waits with a timeout it looks as if the timeout expired right after
the last live node answered (nothing sleeps).

It also keeps the clocks a benchmark needs: ``client_seconds`` (per node, time inside the ClientApp)
and ``transport_seconds`` (the copies). The caller's wall time minus both is the server's own time.
For tests and ``fedprivacy bench flower``; not a deployment transport.
"""

from __future__ import annotations

import copy
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from uuid import uuid4

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

__all__ = ["InProcessGrid"]

DropRule = Callable[[int, Message], bool]


class InProcessGrid(Grid):
    """Runs ``client_app`` for each node in ``node_ids`` (node id -> node config), in this process.

    ``drop(node_id, message)`` returning ``True`` makes that node give no reply to that message.
    Creating the grid makes this process the ServerApp's: it sets Flower's task identity (run id
    ``run_id``, the SuperLink's node id), which ``Message(...)`` reads.
    """

    def __init__(
        self,
        client_app: ClientApp,
        node_ids: Mapping[int, Mapping[str, bool | float | int | str]],
        *,
        run_id: int = 1,
        drop: DropRule | None = None,
        run_config: Mapping[str, bool | float | int | str] | None = None,
    ) -> None:
        self.client_app = client_app
        self.drop = drop
        self.contexts = {
            node: Context(
                run_id=run_id, node_id=node, node_config=dict(config), state=RecordDict(), run_config=dict(run_config or {})
            )
            for node, config in node_ids.items()
        }
        self.client_seconds: dict[int, float] = dict.fromkeys(self.contexts, 0.0)
        self.transport_seconds = 0.0
        self.delivered: list[tuple[int, str]] = []  # (node, message type) of every message a node received
        self.error_replies: list[tuple[int, str]] = []  # (node, reason) of every Error reply
        self._replies: dict[str, Message] = {}
        self._run = Run.create_empty(run_id)
        TaskIdentity.task_id = 1
        TaskIdentity.run_id = run_id
        TaskIdentity.node_id = SUPERLINK_NODE_ID

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(
        self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str, ttl: float | None = None
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for message in messages:
            message_id = uuid4().hex
            message.metadata.__dict__["_message_id"] = message_id  # what a SuperLink does on push
            ids.append(message_id)
            node = message.metadata.dst_node_id
            if node not in self.contexts:
                continue
            started = time.perf_counter()
            delivered = copy.deepcopy(message)
            self.transport_seconds += time.perf_counter() - started
            if self.drop is not None and self.drop(node, delivered):
                continue
            self.delivered.append((node, delivered.metadata.message_type))
            started = time.perf_counter()
            try:
                reply = self.client_app(delivered, self.contexts[node])
            except Exception as exc:  # noqa: BLE001 -- the node's runtime turns any exception into an Error reply
                reason = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                reply = Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=delivered)
            self.client_seconds[node] += time.perf_counter() - started
            if reply.has_error():
                self.error_replies.append((node, str(reply.error.reason)))
            started = time.perf_counter()
            reply = copy.deepcopy(reply)
            self.transport_seconds += time.perf_counter() - started
            reply.metadata.__dict__["_message_id"] = uuid4().hex
            self._replies[message_id] = reply
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(i) for i in message_ids if i in self._replies]

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        return list(self.pull_messages(list(self.push_messages(messages))))
