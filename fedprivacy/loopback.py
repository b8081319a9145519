"""The loopback transport: one sans-I/O server and its clients in memory, every message through its bytes.

Every in-process run (:func:`fedprivacy.secagg.run_secagg_round`, :func:`fedprivacy.psu.run_psu_round`,
:func:`fedprivacy.submodel.run_round`) moves its messages here, so every run exercises the wire format
and the transport's numbers mean the same everywhere. Two halves, as on a network:

- :class:`Loopback`, the server's end: it encodes the server's outbound messages, hands them to the
  clients' host in batches, counts an *exchange* for every stage that sent something, decodes the
  replies and gives them to the server, and closes the server's stages. It counts every byte each way
  per party and times the server's work (its calls, the encoding of its messages, the decoding of the
  replies, the building of lazily built messages).
- a :class:`ClientHost`, the clients' end: :class:`InProcessHost` decodes each message for its
  recipient, calls the recipient's handler, encodes the replies, and applies the scripted dropout
  schedule -- a client *vanishes* just before sending a scripted message (that message and every later
  one are never sent; with ``late``, the withheld message still reaches the server, after the server
  closed that stage). A client whose handler raises a :class:`~fedprivacy.errors.FedPrivacyError` has
  aborted and is gone too. It times each client's protocol work (decoding, the handler, encoding),
  less what the caller's ``excluded`` clock says was not protocol work (local training, input
  generation). A remote host (Ray) implements the same two methods.

The transport does no I/O and keeps no clock but ``clock``, the one the caller gives (wall time by
default). It authenticates nothing: in a deployment the channel binds each reply to its sender.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import FedPrivacyError

__all__ = ["ClientHost", "Delivery", "InProcessHost", "LinkCounters", "Loopback"]


class Wire(Protocol):
    """A message: what the transport needs of it."""

    def to_bytes(self) -> bytes: ...


class ServerParty(Protocol):
    """The server's side of a sans-I/O protocol: it consumes messages and returns the next ones."""

    def receive(self, message: Any) -> object: ...

    def close_stage(self) -> Sequence[Any]: ...


@dataclass
class Delivery:
    """What one client did with one message: the bytes it sent back (in order), whether it is gone from
    now on (it vanished, as scripted, or aborted: ``error``), its protocol seconds, the bytes of a
    withheld message that arrives late, and whether it got the message at all (False: gone already)."""

    replies: list[bytes]
    gone: bool
    seconds: float
    error: FedPrivacyError | None = None
    delivered: bool = True
    late: list[bytes] = field(default_factory=list)


class ClientHost(Protocol):
    """Where a run's clients live: hands them messages (``None``: start, the client speaks first) in
    batches of at most ``batch`` and returns what each did."""

    batch: int

    def deliver(self, items: list[tuple[int, bytes | None]]) -> list[Delivery]: ...


Handler = Callable[[Any], Sequence[Wire]]


class InProcessHost:
    """Clients in this process: ``handlers[party](message)`` returns the party's replies (``message`` is
    ``None`` for the start of a client that speaks first). ``vanishes(party, reply)`` says whether the
    party vanishes just before sending ``reply``; ``late(party, reply)`` whether that withheld reply arrives
    anyway, after the stage closed. ``excluded(party)`` is a running total of the party's seconds that
    are not protocol work (subtracted from its time)."""

    batch = 1  # one message at a time: only one lazily built message exists at once

    def __init__(self, handlers: Mapping[int, Handler], decode: Callable[[bytes], Any], *,
                 vanishes: Callable[[int, Any], bool] = lambda party, reply: False,
                 late: Callable[[int, Any], bool] = lambda party, reply: False,
                 excluded: Callable[[int], float] = lambda party: 0.0,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self._handlers = handlers
        self._decode = decode
        self._vanishes = vanishes
        self._late = late
        self._excluded = excluded
        self._clock = clock
        self.gone: set[int] = set()

    def deliver(self, items: list[tuple[int, bytes | None]]) -> list[Delivery]:
        return [self.deliver_one(party, data) for party, data in items]

    def deliver_one(self, party: int, data: bytes | None) -> Delivery:
        if party in self.gone:
            return Delivery([], True, 0.0, delivered=False)
        clock, excluded_before = self._clock, self._excluded(party)
        started = clock()
        delivery = Delivery([], False, 0.0)
        try:
            replies = self._handlers[party](None if data is None else self._decode(data))
            for reply in replies:
                if self._vanishes(party, reply):
                    delivery.gone = True
                    if self._late(party, reply):
                        delivery.late.append(reply.to_bytes())
                    break
                delivery.replies.append(reply.to_bytes())
        except FedPrivacyError as exc:  # the client aborted; from now on it is simply gone
            delivery = Delivery([], True, 0.0, error=exc)
        delivery.seconds = clock() - started - (self._excluded(party) - excluded_before)
        if delivery.gone:
            self.gone.add(party)
        return delivery


@dataclass
class LinkCounters:
    """What the transport counted: exchanges (server-to-clients stages that sent something, each
    answered by the clients), bytes each party sent and received, each client's protocol seconds, the
    server's seconds (and split by step and work: ``server_steps[step][work]``, the step named by the
    link's ``step`` function when the work began, the work "receive" (decoding and taking in a reply),
    "close" (closing a stage) or "send" (building and encoding its messages)), and the errors of the
    clients that aborted."""

    upload: dict[int, int]
    download: dict[int, int]
    client_seconds: dict[int, float]
    server_seconds: float = 0.0
    exchanges: int = 0
    errors: dict[int, FedPrivacyError] = field(default_factory=dict)
    server_steps: dict[str, dict[str, float]] = field(default_factory=dict)

    def add_server_seconds(self, step: str, work: str, seconds: float) -> None:
        self.server_seconds += seconds
        works = self.server_steps.setdefault(step, {})
        works[work] = works.get(work, 0.0) + seconds

    @property
    def client_seconds_total(self) -> float:
        return sum(self.client_seconds.values())


class Loopback:
    """The server's end of an in-memory link to ``host`` (see the module docstring).

    ``observer(sender, recipient, data)`` sees the bytes of every message delivered (the server is
    party 0); ``tamper(recipient, data)`` may rewrite the server's bytes (negative tests). Replies
    are given to the server as they arrive, except that those shorter than ``hold_below`` bytes wait
    for the end of the stage (or for a longer one, which goes at once with those before it), as a
    server on another machine would see them: the server's time is then not mixed with the clients'
    work, and no two large ones are ever held together. Late ones are given after the stage closed. ``window`` server
    messages go out before the clients answer them (``None``: a whole stage, as a server that sends all
    at once; a small window keeps only that many lazily built messages alive). ``step()`` names the
    server's current step for :attr:`LinkCounters.server_steps` (default: "server")."""

    def __init__(self, server: ServerParty, decode: Callable[[bytes], Any], host: ClientHost,
                 parties: Iterable[int], *, clock: Callable[[], float] = time.perf_counter,
                 observer: Callable[[int, int, bytes], None] | None = None,
                 tamper: Callable[[int, bytes], bytes] | None = None, hold_below: int = 0,
                 window: int | None = None, step: Callable[[], str] | None = None) -> None:
        parties = list(parties)
        self.server = server
        self.host = host
        self.counters = LinkCounters(dict.fromkeys(parties, 0), dict.fromkeys(parties, 0), dict.fromkeys(parties, 0.0))
        self.gone: set[int] = set()
        self._decode = decode
        self._clock = clock
        self._observer = observer
        self._tamper = tamper
        self._hold_below = hold_below
        self._held: list[tuple[int, bytes]] = []
        self._late: list[bytes] = []
        self._window = window
        self._step = step or (lambda: "server")

    def call(self, function: Callable[..., Any], *args: Any, work: str = "close") -> Any:
        """Call the server, timed as its work (``work`` names it in the counters' split)."""
        step = self._step()
        started = self._clock()
        try:
            return function(*args)
        finally:
            self.counters.add_server_seconds(step, work, self._clock() - started)

    def start(self, parties: Iterable[int]) -> None:
        """Clients that speak first: each of ``parties`` starts and its first messages go to the server."""
        self._answer([(party, None) for party in parties if party not in self.gone])

    def exchange(self, outbound: Sequence[Any], progress: Callable[[int, int], None] | None = None) -> None:
        """Send the server's ``outbound`` (items with ``recipient`` and ``message``) and give the replies
        to the server. ``window`` messages are sent (encoded, tampered, observed) before the clients
        answer them; a lazily built sequence builds its items here, a window at a time."""
        counters, clock, total = self.counters, self._clock, len(outbound)
        counters.exchanges += 1 if total else 0
        window = max(1, total if self._window is None else self._window)
        batch, cache = max(1, int(self.host.batch)), isinstance(outbound, (list, tuple))
        last: tuple[object, bytes] | None = None  # a message sent to many (one object): encoded once
        step = self._step()
        for first in range(0, total, window):
            started = clock()
            items: list[tuple[int, bytes | None]] = []
            for item in outbound[first:first + window]:
                if item.recipient in self.gone:
                    continue
                if last is None or last[0] is not item.message:
                    last = (item.message, item.message.to_bytes())
                items.append((item.recipient, last[1]))
                last = last if cache else None
            counters.add_server_seconds(step, "send", clock() - started)
            items = self._send(items)
            for start in range(0, len(items), batch):
                self._answer(items[start:start + batch])
            if progress is not None:
                progress(min(first + window, total), total)

    def close(self) -> Sequence[Any]:
        """Give the server the held replies, close its stage (timed as its work; a
        :class:`~fedprivacy.errors.RoundAborted` propagates), then give it the late replies."""
        self._flush()
        outbound = self.call(self.server.close_stage)
        late, self._late = self._late, []
        for data in late:  # the server must ignore them, never merge them
            self.server.receive(self._decode(data))
        return outbound

    def _send(self, items: list[tuple[int, bytes | None]]) -> list[tuple[int, bytes | None]]:
        """The server's bytes go out: tampered, counted and observed (a start carries none)."""
        counters, observer, tamper = self.counters, self._observer, self._tamper
        sent = []
        for recipient, data in items:
            if data is not None:
                data = data if tamper is None else tamper(recipient, data)
                counters.download[recipient] += len(data)
                if observer is not None:
                    observer(0, recipient, data)
            sent.append((recipient, data))
        return sent

    def _answer(self, items: list[tuple[int, bytes | None]]) -> None:
        counters = self.counters
        for (recipient, _), delivery in zip(items, self.host.deliver(items)):
            if not delivery.delivered:  # gone already: the bytes went out, nobody took them
                self.gone.add(recipient)
                continue
            if delivery.error is not None:
                counters.errors[recipient] = delivery.error
            if delivery.gone:
                self.gone.add(recipient)
            counters.client_seconds[recipient] += delivery.seconds
            self._late.extend(delivery.late)
            for reply in delivery.replies:
                counters.upload[recipient] += len(reply)
                self._held.append((recipient, reply))
                if len(reply) >= self._hold_below:
                    self._flush()

    def _flush(self) -> None:
        held, self._held = self._held, []
        observer, counters, clock = self._observer, self.counters, self._clock
        step = self._step() if held else ""
        for sender, data in held:
            if observer is not None:
                observer(sender, 0, data)
            started = clock()
            self.server.receive(self._decode(data))
            counters.add_server_seconds(step, "receive", clock() - started)
