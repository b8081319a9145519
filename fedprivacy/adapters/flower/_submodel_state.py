"""Where a Flower node keeps its secure-submodel state, and how it reads its privacy settings.

Three kinds of client state, three places:

* **Ledger and memo** (must outlive the run, and the process): the file :class:`ClientStore` in the
  node's state directory when one is configured (``fedprivacy-state-dir``); otherwise
  :class:`ContextStore`, a record in Flower's ``context.state``, which Flower keeps per node for the
  run (simulation) or the run series (deployment, in the SuperNode's memory) and which is lost when the
  node restarts.
* **The round in progress** (a :class:`~fedprivacy.submodel.client.SubmodelRoundClient` with its
  secret keys, shares and sketch): its canonical snapshot (never a pickle) in a record of
  ``context.state`` that lives only from the round's ``RoundStart`` until the client reaches a
  terminal stage; it is never written to a file by fedprivacy. See :func:`save_round`.
* **Settings**: the client's :class:`~fedprivacy.policy.ClientPolicy` comes from the *node* config
  only (:func:`policy_from_config`; the run config is the server's side). Randomized-response
  parameters and the budget cap: the node config's are the client's own; a run config may only
  suggest more privacy (:func:`rr_parameters_from_config`, :func:`epsilon_cap_from_config`). The
  state directory: :func:`state_directory`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from flwr.app import ConfigRecord, RecordDict
from flwr.app.typing import ConfigRecordValues

from ...accounting.ledger import Ledger, parse_ledger
from ...client_settings import (
    DDP_POLICY_SETTINGS,
    FLOWER_SETTINGS,
    POLICY_SETTINGS,
    client_policy_from_settings,
    epsilon_cap_with_suggestion,
    rr_parameters_with_suggestion,
)
from ...errors import DecodeError, InvalidParameters
from ...hazmat.prg import RandomSource, system_random_bytes
from ...ldp.memo import PermanentMemo
from ...ldp.params import RRParameters
from ...policy import ClientPolicy
from ...submodel.client import DeviceState, SubmodelRoundClient

__all__ = [
    "STATE_DIR_KEY",
    "CPP_KEY",
    "P_KEYS",
    "EPSILON_KEY",
    "EPSILON_1_KEY",
    "EPSILON_CAP_KEY",
    "ContextStore",
    "RoundSlot",
    "CountedRandomness",
    "POLICY_KEYS",
    "policy_from_config",
    "rr_parameters_from_config",
    "epsilon_cap_from_config",
    "state_directory",
    "load_round",
    "save_round",
    "clear_round",
    "record_bytes",
    "record_int",
    "record_float",
]

STATE_DIR_KEY = "fedprivacy-state-dir"
CPP_KEY = FLOWER_SETTINGS("cpp")
P_KEYS = tuple(FLOWER_SETTINGS(f"p{i}") for i in range(1, 5))
EPSILON_KEY = FLOWER_SETTINGS("epsilon")
EPSILON_1_KEY = FLOWER_SETTINGS("epsilon-1")
EPSILON_CAP_KEY = FLOWER_SETTINGS("epsilon-cap")
# Node-config keys of the client policy's knobs (fedprivacy.policy.ClientPolicy), with their types.
POLICY_KEYS: dict[str, tuple[str, type]] = {FLOWER_SETTINGS(k): v for k, v in POLICY_SETTINGS.items()}
# Node-config keys of the policy's distributed-DP requirements (fedprivacy.ddp.DDPPolicy).
DDP_POLICY_KEYS: dict[str, tuple[str, type]] = {FLOWER_SETTINGS(k): v for k, v in DDP_POLICY_SETTINGS.items()}

LEDGER_RECORD = "fedprivacy.submodel.ledger"
ROUND_RECORD = "fedprivacy.submodel.round"


# -- settings -------------------------------------------------------------------------------------


def policy_from_config(node_config: Mapping[str, object]) -> ClientPolicy:
    """The node's :class:`~fedprivacy.policy.ClientPolicy`, from its node config only: the keys of
    :data:`POLICY_KEYS` and :data:`DDP_POLICY_KEYS`, plus its own randomized-response parameters and
    cap (the keys of :func:`rr_parameters_from_config`, read from the node config). Unset knobs keep
    the safe defaults. Parsed as the command line parses its options
    (:func:`fedprivacy.client_settings.client_policy_from_settings`)."""
    return client_policy_from_settings(FLOWER_SETTINGS.settings(node_config), FLOWER_SETTINGS)


def rr_parameters_from_config(
    node_config: Mapping[str, object], run_config: Mapping[str, object], policy: ClientPolicy | None = None
) -> RRParameters:
    """The client's randomized-response parameters: exactly one of ``fedprivacy-cpp`` (a preset, 1..5),
    ``fedprivacy-p1``..``fedprivacy-p4`` (probabilities as strings such as "3/4" or numbers), or
    ``fedprivacy-epsilon`` [+ ``fedprivacy-epsilon-1``]. Set in the node config, they are the client's
    own (its policy's, default CPP2, the scheme's recommended preset); set in the run config only, they
    are a suggestion taken only if at least as private as the client's own
    (:class:`~fedprivacy.errors.PolicyViolation` otherwise). Infinite epsilon (CPP1) needs the node's
    ``fedprivacy-allow-insecure``."""
    policy = policy_from_config(node_config) if policy is None else policy
    return rr_parameters_with_suggestion(policy, FLOWER_SETTINGS.settings(node_config),
                                         FLOWER_SETTINGS.settings(run_config), FLOWER_SETTINGS)


def epsilon_cap_from_config(
    node_config: Mapping[str, object], run_config: Mapping[str, object], policy: ClientPolicy | None = None
) -> float:
    """The ledger's budget cap (``fedprivacy-epsilon-cap``; default: no cap): the node's own, lowered by
    the run config's if that is smaller (a cap may only go down). A ledger created with a higher cap
    gets a line lowering it."""
    policy = policy_from_config(node_config) if policy is None else policy
    return epsilon_cap_with_suggestion(policy, FLOWER_SETTINGS.settings(run_config), FLOWER_SETTINGS)


def state_directory(
    node_config: Mapping[str, object], run_config: Mapping[str, object], base: str | os.PathLike[str] | None = None
) -> Path | None:
    """The node's state directory, or None (then ledger and memo live in ``context.state``).

    ``fedprivacy-state-dir`` in the node config (deployment: ``flower-supernode --node-config
    "fedprivacy-state-dir='...'"``) is the node's own directory. Otherwise a base directory shared by
    the nodes of a simulation -- ``fedprivacy-state-dir`` in the run config, else ``base`` (given in
    code) -- and each node uses ``<base>/partition-<partition-id>``: its ``partition-id`` is stable
    across runs, its node id is not. An empty value counts as not set."""
    own = node_config.get(STATE_DIR_KEY)
    if own:
        return Path(str(own))
    shared = run_config.get(STATE_DIR_KEY) or base  # an empty string is "not set"
    if not shared:
        return None
    if "partition-id" not in node_config:
        raise InvalidParameters(
            f"a shared {STATE_DIR_KEY} is a base directory: each node needs a partition-id in its node config "
            f"(or its own {STATE_DIR_KEY} there)"
        )
    return Path(str(shared)) / f"partition-{int(node_config['partition-id'])}"  # type: ignore[call-overload]


# -- ledger and memo in context.state -------------------------------------------------------------


class ContextStore:
    """A client's ledger and memo in Flower's ``context.state`` (for nodes without a state directory).

    Same contract as :class:`fedprivacy.adapters.storage.ClientStore`: appended ledger lines and the
    saved memo are in ``context.state`` when the call returns, and Flower hands that state back to the
    node's next message. It does not survive a restart of the node (use a state directory for that).
    """

    def __init__(self, state: RecordDict, client_id: str) -> None:
        self.state = state
        self.client_id = client_id

    def _record(self) -> ConfigRecord:
        record = self.state.config_records.get(LEDGER_RECORD)
        if record is None:
            record = ConfigRecord({"client-id": self.client_id, "lines": []})
            self.state[LEDGER_RECORD] = record
        elif record.get("client-id") != self.client_id:
            raise InvalidParameters(f"the node's ledger belongs to {record.get('client-id')!r}, not {self.client_id!r}")
        return record

    def open_ledger(self, epsilon_cap: float) -> Ledger:
        record = self._record()
        lines = _ledger_lines(record)
        if lines:
            return parse_ledger(lines, "context.state")
        ledger, header = Ledger.create(self.client_id, epsilon_cap)
        self.append_ledger_line(header)
        return ledger

    def append_ledger_line(self, line: str) -> None:
        record = self._record()
        record["lines"] = [*_ledger_lines(record), line]

    def load_memo(self, params: RRParameters, ledger: Ledger) -> PermanentMemo:
        data = self._record().get("memo")
        return PermanentMemo.stored_or_empty(None if data is None else record_bytes(data), self.client_id, params,
                                             released=ledger.has_releases, where="the node's memo")

    def save_memo(self, memo: PermanentMemo) -> None:
        if memo.client_id != self.client_id:
            raise InvalidParameters("memo of another client")
        self._record()["memo"] = memo.encode()


# -- the round in progress ------------------------------------------------------------------------


class CountedRandomness:
    """A randomness source that counts the bytes drawn from it, so that a seeded source (tests only)
    can be given back to a restored round at the same position (:func:`load_round`)."""

    def __init__(self, source: RandomSource, drawn: int = 0) -> None:
        self._source = source
        self.drawn = drawn

    def __call__(self, size: int) -> bytes:
        self.drawn += size
        return self._source(size)


@dataclass
class RoundSlot:
    """The round a node is in: Flower's run, the round index, the node's party id, its protocol client
    and, for a seeded source, the randomness it draws from (None: the OS CSPRNG)."""

    run_id: int
    round_index: int
    party: int
    client: SubmodelRoundClient
    randomness: CountedRandomness | None = None


def save_round(state: RecordDict, slot: RoundSlot) -> None:
    """Keep the round's client in ``context.state`` until the node's next message, as its canonical
    snapshot (:meth:`~fedprivacy.submodel.client.SubmodelRoundClient.snapshot`; no pickle).

    Flower 1.42 runs each message in a fresh ClientApp object (a new ``flwr-clientapp`` process per
    message in deployment, a fresh copy in a Ray actor in simulation), so ``context.state`` is the only
    memory of a node that lasts from one message to the next. The snapshot holds the round's secrets
    only (key pairs, the self-mask seed, shares held for peers, its real set), never the
    :class:`~fedprivacy.submodel.client.DeviceState` (the trainer, ledger and memo are rebuilt for every
    message) nor the identity key of malicious mode (read from the node config again); it is dropped
    by :func:`clear_round` when the round ends for the node. The bytes are only ever read back by this
    node (``context.state`` never leaves it), and are written before the step's replies leave
    (``protocols/secagg/spec.md`` §14.6). A seeded source's position (bytes drawn) is kept with it.
    """
    record = {"run-id": int(slot.run_id), "round": int(slot.round_index), "party": int(slot.party),
              "client": slot.client.snapshot()}
    if slot.randomness is not None:
        record["drawn"] = int(slot.randomness.drawn)
    state[ROUND_RECORD] = ConfigRecord(record)  # type: ignore[arg-type]


def record_bytes(value: ConfigRecordValues) -> bytes:
    """A config-record value known to be bytes (checked on arrival, or written by this node)."""
    if not isinstance(value, bytes):
        raise TypeError(f"expected bytes, got {type(value).__name__}")
    return value


def record_int(value: ConfigRecordValues) -> int:
    """``int(value)`` for a scalar config-record value; a list is a ``TypeError``, as ``int`` makes it."""
    if isinstance(value, list):
        raise TypeError(f"int() argument must be a string, a bytes-like object or a real number, not '{type(value).__name__}'")
    return int(value)


def record_float(value: ConfigRecordValues) -> float:
    """``float(value)`` for a scalar config-record value; a list is a ``TypeError``, as ``float`` makes it."""
    if isinstance(value, list):
        raise TypeError(f"float() argument must be a string or a real number, not '{type(value).__name__}'")
    return float(value)


def _ledger_lines(record: ConfigRecord) -> list[str]:
    lines = record["lines"]
    strings = [line for line in lines if isinstance(line, str)] if isinstance(lines, list) else []
    if not isinstance(lines, list) or len(strings) != len(lines):
        raise DecodeError("context.state: the node's ledger lines are not a list of strings")
    return strings


def load_round(
    state: RecordDict, client_state: DeviceState, *, run_id: int, round_index: int, party: int,
    random_source: Callable[[], RandomSource] | None = None,
) -> RoundSlot | None:
    """The round saved by :func:`save_round`, restored over ``client_state``; None when the node keeps
    no round, or another run's, round's or party's (a restarted node, or a stale message).

    The client is held to the checks of a live one
    (:meth:`~fedprivacy.submodel.client.SubmodelRoundClient.restore`): a tampered or foreign snapshot
    raises :class:`DecodeError` or :class:`~fedprivacy.errors.LocalProtocolError`, one the node's
    policy refuses :class:`~fedprivacy.errors.PolicyViolation`. ``random_source()`` (tests only) gives
    the round's seeded stream again; it is moved past the bytes the round already drew."""
    record = state.config_records.get(ROUND_RECORD)
    if record is None:
        return None
    if (record_int(record["run-id"]), record_int(record["round"]), record_int(record["party"])) != (
            run_id, round_index, party):
        return None
    randomness = None
    source: RandomSource = system_random_bytes
    if random_source is not None:
        drawn = record_int(record["drawn"]) if "drawn" in record else 0
        if drawn < 0:
            raise DecodeError("context.state: a negative count of random bytes drawn")
        seeded = random_source()
        seeded(drawn)  # (a deterministic stream: skip what the round already used)
        source = randomness = CountedRandomness(seeded, drawn)
    client = SubmodelRoundClient.restore(record_bytes(record["client"]), client_state, party, round_index=round_index,
                                         random_bytes=source)
    return RoundSlot(run_id, round_index, party, client, randomness)


def clear_round(state: RecordDict) -> None:
    """Forget the round in progress (its keys and shares go with it)."""
    if ROUND_RECORD in state:
        del state[ROUND_RECORD]
