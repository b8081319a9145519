"""Fuzz targets: one per decoder of untrusted bytes and per on-disk format.

Each target has seed inputs (valid encodings, made by running the production code) and a function
that decodes one candidate. The contract: a target raises nothing but :class:`DecodeError` (the
typed errors of the file formats, ``LedgerIntegrityError`` and ``StateDamaged``, derive from it);
anything else is a finding. What decodes must be canonical where the format promises it (it
re-encodes to the same bytes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fedprivacy.accounting import Ledger, participate, refusal_event
from fedprivacy.accounting.ledger import parse_ledger
from fedprivacy.accounting.recovery import HeadRecord, reconcile
from fedprivacy.errors import LocalProtocolError, PolicyViolation
from fedprivacy.hazmat.field import Modulus
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.ldp import PermanentMemo, RRParameters
from fedprivacy.psu.params import PSUParameters
from fedprivacy.secagg import SecAggClient, SecAggConfig, SecAggServer
from fedprivacy.secagg.messages import decode_message
from fedprivacy.secagg.rows import ClientRowPlan
from fedprivacy.submodel.demo import init_model, synthetic_workload
from fedprivacy.submodel._snapshot import decode_round
from fedprivacy.submodel.client import DeviceState, SubmodelRoundClient
from fedprivacy.submodel.messages import PhaseMessage, RoundStart, RowDownload, decode_submodel_message
from fedprivacy.submodel.reference import ReferenceModel, ReferenceTrainer
from fedprivacy.submodel.server import SubmodelRoundServer
from fedprivacy.submodel.settings import RoundSettings
from fedprivacy.submodel.stages import RoundServerStage

__all__ = ["Target", "targets"]


@dataclass(frozen=True)
class Target:
    name: str
    seeds: tuple[bytes, ...]
    run: Callable[[bytes], object]  # decodes one input; only DecodeError may escape


def _restore(data: bytes) -> object:
    """A snapshot restored, or the snapshot itself when the host's (default) policy refuses a well-formed
    one: ``SecAggClient.restore`` documents that refusal (:class:`PolicyViolation`)."""
    try:
        return SecAggClient.restore(data)
    except PolicyViolation:
        return data


def _data_of(value: object) -> bytes:
    return value if isinstance(value, bytes) else value.snapshot()  # type: ignore[attr-defined]


def _canonical(decode: Callable[[bytes], object], encode: Callable[[object], bytes]) -> Callable[[bytes], object]:
    def run(data: bytes) -> object:
        value = decode(data)
        again = encode(value)
        if again != data:
            raise AssertionError(f"decoded but not canonical: {data.hex()[:200]}")
        return value

    return run


@lru_cache(maxsize=1)
def _submodel_transcript() -> tuple[list[bytes], list[bytes], list[bytes], list[bytes], list[bytes], list[bytes]]:
    """Every message of a small secure submodel round, as bytes; and the configs, PSU parameters and
    row plans inside them."""
    workload = synthetic_workload(clients=4, universe=300, items_per_user=20, seed=3)
    states = {c.client_id: DeviceState.new(ReferenceTrainer(c), RRParameters.preset(2)) for c in workload.clients}
    model = ReferenceModel(*init_model(np.arange(300, dtype=np.uint64), 3, seed=1))
    server = SubmodelRoundServer(model, RoundSettings(universe=300, max_set_size=20, dropout_fraction=0.2), sorted(states), 0)
    clients = {p: SubmodelRoundClient(s, p, random_bytes=DeterministicRandomness(f"fuzz-{p}")) for p, s in states.items()}
    submodel, secagg, configs, psu, plans, compact, sum_parties = [], [], [], [], [], [], []
    outbound = server.start()
    while server.stage not in (RoundServerStage.COMPLETED, RoundServerStage.ABORTED):
        for item in outbound:
            data = item.message.to_bytes()
            submodel.append(data)
            message = decode_submodel_message(data)
            if isinstance(message, RoundStart):
                configs.append(message.psu_config.encode())
                psu.append(message.psu_params.encode())
            if isinstance(message, RowDownload):
                configs.append(message.config.encode())
                plans.append(message.plan.encode())
                compact.append(message.plan.encode(message.config.party_ids))
                sum_parties[:] = message.config.party_ids
            if isinstance(message, PhaseMessage):
                secagg.append(message.payload.to_bytes())
            for reply in clients[item.recipient].receive(message):
                reply_bytes = reply.to_bytes()
                submodel.append(reply_bytes)
                decoded = decode_submodel_message(reply_bytes)
                if isinstance(decoded, PhaseMessage):
                    secagg.append(decoded.payload.to_bytes())
                server.receive(decoded)
        outbound = server.close_stage()
    assert server.stage is RoundServerStage.COMPLETED
    unique = lambda items: sorted(set(items), key=items.index)  # noqa: E731
    _COMPACT_PARTIES[:] = sum_parties
    return unique(submodel), unique(secagg), unique(configs), unique(psu), unique(plans), unique(compact)


_COMPACT_PARTIES: list[int] = []  # the rows' sum's parties of the transcript (the compact plans' context)


@lru_cache(maxsize=1)
def _snapshots() -> list[bytes]:
    """SecAggClient snapshots at every stage of a small round (4 parties, one drops after sharing)."""
    session = b"fedprivacy-fuzz-session-id-0001!"
    config = SecAggConfig((1, 2, 3, 4), 5, Modulus.U32, 3, 3, session, 0)
    server = SecAggServer(config)
    clients = {p: SecAggClient(config, p, random_bytes=DeterministicRandomness(f"snap-{p}")) for p in config.party_ids}
    snapshots = [c.snapshot() for c in clients.values()]
    for p, client in clients.items():
        for m in client.start():
            server.receive(m)
    snapshots += [c.snapshot() for c in clients.values()]
    for _ in range(4):
        outs = server.close_stage()
        if not outs:
            break
        for out in outs:
            client = clients[out.recipient]
            sent = client.receive(out.message)
            if getattr(client.stage, "name", "") == "AWAITING_INPUT":
                snapshots.append(client.snapshot())
                sent = client.submit_input(np.arange(5, dtype=np.uint32) * out.recipient)
            if out.recipient == 4 and len(snapshots) > 12:
                continue  # party 4 drops
            for m in sent:
                server.receive(m)
            snapshots.append(client.snapshot())
    return sorted(set(snapshots), key=snapshots.index)


@lru_cache(maxsize=1)
def _round_snapshots() -> tuple[list[bytes], dict[int, DeviceState]]:
    """SubmodelRoundClient snapshots of a small round, each client's before every message it gets and
    at its end (created, sketch-sent, report-sent, uploading, completed); and the clients' states."""
    workload = synthetic_workload(clients=4, universe=300, items_per_user=20, seed=5)
    states = {c.client_id: DeviceState.new(ReferenceTrainer(c), RRParameters.preset(2)) for c in workload.clients}
    model = ReferenceModel(*init_model(np.arange(300, dtype=np.uint64), 3, seed=1))
    server = SubmodelRoundServer(model, RoundSettings(universe=300, max_set_size=20, dropout_fraction=0.2), sorted(states), 0)
    clients = {p: SubmodelRoundClient(s, p, random_bytes=DeterministicRandomness(f"fuzz-snap-{p}")) for p, s in states.items()}
    snapshots = []
    outbound = server.start()
    while server.stage not in (RoundServerStage.COMPLETED, RoundServerStage.ABORTED):
        for item in outbound:
            client = clients[item.recipient]
            snapshots.append(client.snapshot())
            for reply in client.receive(decode_submodel_message(item.message.to_bytes())):
                server.receive(decode_submodel_message(reply.to_bytes()))
        outbound = server.close_stage()
    snapshots += [c.snapshot() for c in clients.values()]
    return sorted(set(snapshots), key=snapshots.index), states


def _restore_round(data: bytes) -> object:
    """A round client restored over its party's state, or the bytes themselves when the restore refuses
    a well-formed snapshot as it documents (another party's, a stale one: :class:`LocalProtocolError`;
    outside the policy: :class:`PolicyViolation`)."""
    _, states = _round_snapshots()
    party = decode_round(data).party_id
    try:
        return SubmodelRoundClient.restore(data, states.get(party, states[1]), party if party in states else 1)
    except (LocalProtocolError, PolicyViolation):
        return data


@lru_cache(maxsize=1)
def _client_files() -> tuple[list[str], bytes, bytes, bytes]:
    """A client's ledger lines (releases and a refusal), its head record and its memo."""
    params = RRParameters.preset(3)
    ledger, header = Ledger.create("fuzz", 2.5)
    lines, memo = [header], PermanentMemo.empty("fuzz", params)
    for r in range(3):
        part = participate(ledger, memo, params, np.arange(r, 12 + r, dtype=np.uint64), [5], r,
                           random_bytes=DeterministicRandomness(f"files-{r}"))
        lines.append(part.ledger_line)
        memo = part.memo
    lines.append(refusal_event(ledger, 9))
    head = HeadRecord("fuzz", len(lines) - 1, ledger.head).encode()
    return lines, ("\n".join(lines) + "\n").encode(), head, memo.encode()


def _ledger_line(data: bytes) -> object:
    """The first byte picks the line's position (after that many valid lines); the rest is the line."""
    lines, _, _, _ = _client_files()
    if not data:
        return None
    try:
        text = data[1:].decode("utf-8")
    except UnicodeDecodeError:
        return None  # the file reader reports non-UTF-8 lines itself (tested with the ledger file)
    return parse_ledger(lines[: 1 + data[0] % (len(lines) - 1)] + [text], "<fuzz>")


def _ledger_file(data: bytes) -> object:
    _, _, head, memo = _client_files()
    return reconcile("fuzz", data, head, memo)


def _client_state(data: bytes) -> object:
    """The three files together, split from one input at two NUL-free markers (mutations cross them)."""
    parts = data.split(b"\x00--\x00", 2)
    while len(parts) < 3:
        parts.append(b"")
    ledger, head, memo = parts
    return reconcile("fuzz", ledger or None, head or None, memo or None)


def targets() -> list[Target]:
    submodel, secagg, configs, psu, plans, compact = _submodel_transcript()
    parties = tuple(_COMPACT_PARTIES)
    lines, ledger_file, head, memo = _client_files()
    return [
        Target("secagg-message", tuple(secagg), _canonical(decode_message, lambda m: m.to_bytes())),
        Target("secagg-config", tuple(configs), _canonical(SecAggConfig.decode, lambda c: c.encode())),
        Target("secagg-row-plan", tuple(plans), _canonical(ClientRowPlan.decode, lambda p: p.encode())),
        Target("secagg-compact-row-plan", tuple(compact), _canonical(lambda d: ClientRowPlan.decode(d, parties),
                                                                     lambda p: p.encode(parties))),
        Target("secagg-snapshot", tuple(_snapshots()), _canonical(_restore, _data_of)),
        Target("psu-parameters", tuple(psu), _canonical(PSUParameters.decode, lambda p: p.encode())),
        Target("submodel-message", tuple(submodel), _canonical(decode_submodel_message, lambda m: m.to_bytes())),
        Target("submodel-snapshot", tuple(_round_snapshots()[0]), _canonical(_restore_round, _data_of)),
        Target("memo", (memo, PermanentMemo.empty("fuzz", RRParameters.preset(2)).encode()), PermanentMemo.decode),
        Target("ledger-line", tuple(bytes([k]) + line.encode() for k, line in enumerate(lines[1:])), _ledger_line),
        Target("ledger-file", (ledger_file,), _ledger_file),
        Target("head-record", (head,), HeadRecord.decode),
        Target("client-state", (ledger_file + b"\x00--\x00" + head + b"\x00--\x00" + memo,), _client_state),
    ]


if __name__ == "__main__":  # pragma: no cover
    for target in targets():
        print(target.name, len(target.seeds), "seeds", sum(map(len, target.seeds)), "bytes")
