"""The client of the secure submodel round, sans-I/O: server messages in, messages to send out.

One :class:`SubmodelRoundClient` per client and round, over the client's persistent
:class:`DeviceState` (its trainer, randomized-response parameters, ledger and memo). Stages and the
allowed moves are in :mod:`fedprivacy.submodel.stages`.

1. ``RoundStart``: the client starts the PSU's secure sum and, on the first attempt, the rows' (their
   keys and shares travel together: 7 exchanges a round, ``protocols/submodel/spec.md``); it encodes
   S_i as a PSU sketch once the PSU's shares are in (a later ``RoundStart`` of the same round with a
   higher attempt restarts the PSU's sum with the larger table, never the rows'). A client whose S_i
   exceeds the public cap sums an empty sketch instead and sits out at step 2.
2. ``UnionBroadcast``: an oversized client answers ``SitOut``; otherwise double randomized response over U under its budget (``participate``); the
   ledger line and the memo go to ``state.store`` *before* ``RandomizedSetReport`` is returned. If the
   budget filter says no, a refusal line is stored and the answer is ``SitOut``.
3. ``RowDownload``: checks that the plan asks only for rows of its own S''_i (plus the dense
   pseudo-rows), trains on the planned rows it really holds, quantizes (count * delta, count) for
   every planned row -- zero where it holds none -- and masks and uploads it at once (the rows'
   shares are already in).
4. ``PhaseMessage`` (rows) until its unmasking answer: ``COMPLETED``.

Sees: U, its rows and the dense parameters, the round's public settings and party ids, the chooser
sets of the rows it chose (from its plan). Sends: a masked sketch, S''_i, a masked upload, shares.

Every number the server picks that bounds what it learns is checked against the client's own
:class:`~fedprivacy.policy.ClientPolicy` (``state.policy``; ``protocols/submodel/spec.md``, "Client
policy"): the secure sums' party counts and thresholds, the PSU's cohort, table size and attempts per
round index (counted in the ledger, so restarts do not reset them), ``min_choosers`` (re-checked when
masking, against the peers it really masks with: a row below the floor goes up as zero with count 0),
and its randomized-response parameters. Threat model and what leaks: ``protocols/submodel/spec.md``,
"What the server learns" and "Client policy" (the secure sums' adversaries: ``protocols/secagg/spec.md``
§1, malicious mode §14).

A host that cannot keep the object between two messages keeps :meth:`SubmodelRoundClient.snapshot`
(canonical bytes, no pickle) and calls :meth:`SubmodelRoundClient.restore` (``protocols/submodel/spec.md``,
"Snapshot": the format, and what a restore refuses).

Raises: a bad server message aborts the client (:class:`RemoteProtocolError`, :class:`PolicyViolation`
for a request outside the policy, or the secure-aggregation client's error) and it sends nothing
more; a driving mistake is a :class:`LocalProtocolError`; an invalid training result is
:class:`InvalidParameters` (aborts).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..accounting import Ledger, UpdateEvent, cap_event, participate, psu_attempt_event, refusal_event, replay
from ..accounting.events import PrivacyEvent
from ..ddp import NoisePlan, check_overflow, client_variance, noise_floor, privatize, release_rho, to_modulus
from ..errors import (
    BudgetExceeded,
    DecodeError,
    FedPrivacyError,
    InvalidParameters,
    LocalProtocolError,
    PolicyViolation,
    RemoteProtocolError,
)
from ..hazmat.field import Modulus
from ..hazmat.prg import RandomSource, system_random_bytes
from ..ldp import PermanentMemo, RRParameters
from ..policy import ClientPolicy
from ..psu.iblt import encode_set, validate_ids
from ..psu.params import PSUParameters
from ..secagg import Adversary, Identity, Quantizer, SecAggClient, SecAggConfig, TrustStore
from ..secagg.client import start_jointly
from ..secagg.stages import ClientStage
from ._snapshot import StoredRound, decode_round, encode_round
from .interfaces import LocalTrainer
from .messages import (
    Phase,
    PhaseMessage,
    PublicSettings,
    RandomizedSetReport,
    RoundStart,
    RowDownload,
    SitOut,
    SubmodelMessage,
    UnionBroadcast,
)
from .stages import ROUND_CLIENT_TRANSITIONS, RoundClientEvent, RoundClientStage

__all__ = ["StateStore", "PersistentStore", "DeviceState", "SubmodelRoundClient", "check_training_result", "lower_cap"]


class StateStore(Protocol):
    """Where a client's ledger and memo persist (``ClientStore`` of the file adapter, Flower's node
    state, ...). Both calls must be durable when they return."""

    def append_ledger_line(self, line: str) -> None: ...

    def save_memo(self, memo: PermanentMemo) -> None: ...


class PersistentStore(StateStore, Protocol):
    """A :class:`StateStore` that also reloads what it holds (``ClientStore`` keeps it in a directory)."""

    def open_ledger(self, epsilon_cap: float) -> Ledger: ...

    def load_memo(self, params: RRParameters, ledger: Ledger) -> PermanentMemo: ...


@dataclass
class DeviceState:
    """A client's private, persistent state (on its device): its trainer, parameters, ledger, memo,
    and its :class:`~fedprivacy.policy.ClientPolicy` (device configuration, never the server's)."""

    client: LocalTrainer
    params: RRParameters
    ledger: Ledger
    memo: PermanentMemo
    store: StateStore | None = None  # where the ledger and memo persist (None: in memory only)
    policy: ClientPolicy = field(default_factory=ClientPolicy)
    # Identity key and trust store (device configuration): with them every secure sum of the round
    # must be in malicious mode (protocols/secagg/spec.md §14); the policy's adversary becomes malicious.
    identity: Identity | None = None
    trust: TrustStore | None = None

    def __post_init__(self) -> None:
        if (self.identity is None) != (self.trust is None):
            raise InvalidParameters("an identity key needs the trust store, and a trust store an identity key")
        if self.identity is not None and self.trust is not None:
            if self.trust.get(self.identity.party_id) != self.identity.verify_key:
                raise InvalidParameters("the trust store does not name this client's identity key")
            if self.policy.adversary is not Adversary.MALICIOUS:
                self.policy = self.policy.replace(adversary=Adversary.MALICIOUS)

    @classmethod
    def new(
        cls, client: LocalTrainer, params: RRParameters, epsilon_cap: float = float("inf"),
        store: PersistentStore | None = None, *, policy: ClientPolicy | None = None, identity: Identity | None = None,
        trust: TrustStore | None = None,
    ) -> DeviceState:
        """Fresh state; with ``store`` the ledger and memo are reloaded from it and persist there (the
        caller opens it for this client's ledger id, ``client-<client_id>``).

        The cap is the smaller of ``epsilon_cap`` and the policy's; a ledger reloaded with a higher cap
        gets a line lowering it (a cap only ever goes down; a higher one asked for is ignored)."""
        policy = ClientPolicy() if policy is None else policy
        epsilon_cap = policy.accept_cap(epsilon_cap)
        client_id = f"client-{client.client_id}"
        if store is None:
            ledger, _ = Ledger.create(client_id, epsilon_cap)
            return cls(client, params, ledger, PermanentMemo.empty(client_id, params), policy=policy,
                       identity=identity, trust=trust)
        ledger = store.open_ledger(epsilon_cap)
        lower_cap(ledger, store, epsilon_cap)
        return cls(client, params, ledger, store.load_memo(params, ledger), store, policy, identity, trust)


def lower_cap(ledger: Ledger, store: StateStore | None, epsilon_cap: float) -> None:
    """Record (and persist) a cap lower than the ledger's current one; a higher one changes nothing."""
    line = cap_event(ledger, epsilon_cap)
    if line is not None and store is not None:
        store.append_ledger_line(line)


def check_training_result(party: int, result: object, given: np.ndarray, width: int, dense_size: int) -> None:
    """A training result must update distinct rows it was given, with the right shapes and finite values."""
    row_ids = np.asarray(getattr(result, "row_ids", None))
    deltas = np.asarray(getattr(result, "row_deltas", None))
    counts = np.asarray(getattr(result, "row_counts", None))
    dense_delta = np.asarray(getattr(result, "dense_delta", None))
    samples = getattr(result, "samples", None)
    problems = []
    if row_ids.ndim != 1 or (row_ids.size and row_ids.dtype.kind not in "ui"):
        problems.append("row_ids must be a vector of row ids")
    elif np.unique(row_ids).shape[0] != row_ids.shape[0] or not np.isin(row_ids, given).all():
        problems.append("row_ids must be distinct rows among those it was given")
    if deltas.shape != (row_ids.shape[0] if row_ids.ndim == 1 else -1, width):
        problems.append(f"row_deltas must have shape (len(row_ids), {width})")
    elif deltas.dtype.kind not in "fiu" or not np.isfinite(deltas).all():
        problems.append("row_deltas must be finite numbers")
    if counts.shape != row_ids.shape or (counts.size and (counts.dtype.kind not in "fiu" or counts.min() < 0)):
        problems.append("row_counts must be one count >= 0 per row")
    if dense_delta.shape != (dense_size,):
        problems.append(f"dense_delta must have shape ({dense_size},)")
    elif dense_delta.dtype.kind not in "fiu" or not np.isfinite(dense_delta).all():
        problems.append("dense_delta must be finite numbers")
    if not isinstance(samples, (int, np.integer)) or isinstance(samples, bool) or samples < 0:
        problems.append("samples must be an integer >= 0")
    if problems:
        raise InvalidParameters(f"client {party}'s training result is invalid: " + "; ".join(problems))


def _psu_ceiling(settings: PublicSettings, parties: int) -> int:
    """The most ids the first attempt's parties can hold under their public caps: no PSU table of the
    round (first attempt or rerun) may have a larger bound, and no union may hold more ids."""
    return min(parties * settings.max_set_size, settings.universe)


def _union_limit(params: PSUParameters, ceiling: int) -> int:
    """The most ids an honest union of a round can hold (``protocols/submodel/spec.md``, "Stages"): at
    most ``ceiling`` (what the parties can hold), and at most the table's cells, as a peel takes every
    id from a cell it alone occupies, which stays empty after (so a table may decode more ids than its
    nominal bound, never more than its cells)."""
    return min(ceiling, params.cells)


def _check_round_shape(settings: PublicSettings, params: PSUParameters, psu_config: SecAggConfig | None,
                       rows_config: SecAggConfig, round_index: int, party_id: int) -> None:
    """The round's two sums and PSU table fit its public settings (``psu_config`` None: that sum is over)."""
    if psu_config is not None and (psu_config.dim != params.vector_length or psu_config.modulus is not Modulus.P61):
        raise RemoteProtocolError("the PSU's secure sum must add sketches of the table's length mod p")
    if params.universe != settings.universe:
        raise RemoteProtocolError("the PSU table and the round disagree on the universe")
    # The rows' sum is set up with the PSU's first attempt, over its parties: the round's modulus, its
    # dim the rows' block width (at least one parameter and the count); a full graph, or a sparse one
    # the policy accepts (checked with the thresholds).
    if (rows_config.modulus is not settings.modulus or rows_config.dim < 2
            or rows_config.round_index != round_index or party_id not in rows_config.party_ids):
        raise RemoteProtocolError("the rows' secure sum must be over this round's parties and modulus")
    # The table must have the default shape for its bound (no oversized tables from a tiny message).
    if params.encode() != PSUParameters(settings.universe, params.union_bound, params.session_id, params.attempt).encode():
        raise RemoteProtocolError("the PSU table must have the default shape for its bound")


def _check_round_policy(policy: ClientPolicy, settings: PublicSettings, params: PSUParameters,
                        psu_config: SecAggConfig | None, rows_config: SecAggConfig) -> None:
    """The client's policy on what the round asks (the budgeted checks are the caller's)."""
    policy.check_allocation(params.vector_length * 8, "the PSU table")
    if psu_config is not None:
        policy.check_psu_cohort(psu_config.clients)
        policy.check_secagg_config(psu_config, "PSU's secure sum")
    policy.check_secagg_config(rows_config, "rows' secure sum")
    policy.check_rows_graph(rows_config)
    if settings.min_choosers < policy.min_choosers:
        raise PolicyViolation("min_choosers", f"the round's min_choosers {settings.min_choosers} is below the "
                                              f"client's floor {policy.min_choosers}")


_EVENT_OF = {
    RoundStart: RoundClientEvent.ROUND_START,
    UnionBroadcast: RoundClientEvent.UNION,
    RowDownload: RoundClientEvent.DOWNLOAD,
}


class SubmodelRoundClient:
    """One client in one round, as party ``party_id`` (the id the round's server messages name; the
    caller says which: the in-process engine uses the client's id, the Flower adapter the party the
    server calls the node). Drive it with :meth:`receive`; read :attr:`stage`.

    ``random_bytes`` is the source of every secret and coin the client draws (keys, Shamir
    coefficients, sketch masks, randomized response, stochastic rounding); the default is the OS CSPRNG.
    """

    def __init__(self, state: DeviceState, party_id: int, *, random_bytes: RandomSource = system_random_bytes) -> None:
        if isinstance(party_id, bool) or not isinstance(party_id, (int, np.integer)):
            raise InvalidParameters(f"a party id must be an integer, got {party_id!r}")
        self.state = state
        self.party_id = int(party_id)
        self.stage = RoundClientStage.CREATED
        self.error: FedPrivacyError | None = None
        self.sat_out_reason: str | None = None  # "oversized" | "budget" | "update-budget" (kept on the device)
        self.training_seconds = 0.0
        self.clock = time.perf_counter  # times the training (a benchmark may pass time.process_time)
        self.chosen: np.ndarray | None = None  # S''_i once reported
        self._random_bytes = random_bytes
        self._round_index: int | None = None
        self._settings: PublicSettings | None = None
        self._real_ids: np.ndarray | None = None
        self._psu_params: PSUParameters | None = None
        self._psu_ceiling = 0
        self._psu: SecAggClient | None = None
        self._rows: SecAggClient | None = None

    # -- driving ------------------------------------------------------------------------------


    def receive(self, message: SubmodelMessage) -> list[SubmodelMessage]:
        """Consume one server message; returns the messages to send (in order)."""
        if isinstance(message, PhaseMessage):
            event = RoundClientEvent.PSU_MESSAGE if message.phase is Phase.PSU else RoundClientEvent.ROWS_MESSAGE
        else:
            event = _EVENT_OF.get(type(message))  # type: ignore[assignment]
        if self.stage is RoundClientStage.ABORTED:
            raise LocalProtocolError("this client aborted; it takes no further part in the round")
        if event is None:
            return self._fail(RemoteProtocolError(f"a client does not accept {type(message).__name__}"))
        allowed = ROUND_CLIENT_TRANSITIONS.get((self.stage, event))
        if allowed is None:
            return self._fail(RemoteProtocolError(f"{event.value} is not allowed in stage {self.stage.value}"))
        handler: Callable[[SubmodelMessage], list[SubmodelMessage]] = {
            RoundClientEvent.ROUND_START: self._on_round_start,
            RoundClientEvent.PSU_MESSAGE: self._on_psu_message,
            RoundClientEvent.UNION: self._on_union,
            RoundClientEvent.DOWNLOAD: self._on_download,
            RoundClientEvent.ROWS_MESSAGE: self._on_rows_message,
        }[event]
        before = self.stage
        try:
            out = handler(message)
        except FedPrivacyError as exc:
            return self._fail(exc)
        except Exception as exc:  # e.g. the store could not persist: stop, never half-updated
            self._fail(LocalProtocolError(f"the client stopped: {type(exc).__name__}: {exc}"), raise_error=False)
            raise
        if self.stage not in allowed:  # a handler bug, never a peer's doing
            after, self.stage = self.stage, before
            raise AssertionError(f"illegal move {before.value} -> {after.value}")
        return out

    def _fail(self, error: FedPrivacyError, raise_error: bool = True) -> list[SubmodelMessage]:
        if self.stage not in (RoundClientStage.COMPLETED, RoundClientStage.SAT_OUT):
            self.stage = RoundClientStage.ABORTED
            self.error = error
            self._real_ids = None
            self._psu = self._rows = None
        if raise_error:
            raise error
        return []

    # -- persistence --------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """Everything this client keeps between two messages, as canonical bytes
        (``protocols/submodel/spec.md``, "Snapshot"): the stage, round index, public settings, PSU
        parameters and ceiling, real set, both secure sums' snapshots (their secrets included), S''_i,
        the sat-out reason and the training time. Never the :class:`DeviceState` (trainer, ledger,
        memo, policy) nor the identity key: :meth:`restore` takes them from the host again.

        Keep it where the client's secrets may live (the device's own storage), never send it, and
        persist it before the messages of the step it follows leave (``protocols/secagg/spec.md``
        §14.6). An aborted client has nothing to keep: :class:`LocalProtocolError`."""
        if self.stage is RoundClientStage.ABORTED:
            raise LocalProtocolError("an aborted client has no state to keep")
        stored = StoredRound(
            self.party_id, self.stage, self.sat_out_reason, self.training_seconds, self._round_index, self._settings,
            self._psu_params, self._psu_ceiling, self._real_ids,
            None if self._psu is None else self._psu.snapshot(), None if self._rows is None else self._rows.snapshot(),
            self.chosen,
        )
        return encode_round(stored)

    @classmethod
    def restore(cls, data: bytes | bytearray | memoryview, state: DeviceState, party_id: int, *,
                round_index: int | None = None, random_bytes: RandomSource = system_random_bytes) -> SubmodelRoundClient:
        """The client a :meth:`snapshot` was taken of, over the host's ``state`` (its trainer, ledger,
        memo, policy and identity) as party ``party_id``, held to the checks a live client makes.

        Raises :class:`DecodeError` for bytes that are not a snapshot a live client writes (malformed,
        or a round that breaks the round's rules: sums of another party or over other parties, a table
        or attempt beyond the caps, a jointly advertised pair that no longer pairs); for a well-formed
        one that is not this client's current round, :class:`LocalProtocolError`: another party's,
        another round's than ``round_index`` (when given), or one the ledger shows is stale (a later PSU attempt joined, or a release or update recorded after the
        snapshot's stage: restoring it would release twice); and :class:`PolicyViolation` (or
        :class:`RemoteProtocolError`) when the round it holds is outside ``state.policy``. A client in
        malicious mode needs ``state.identity`` and ``state.trust``. Nothing is returned half-built.
        """
        stored = decode_round(data)
        client = cls(state, party_id, random_bytes=random_bytes)
        if stored.party_id != client.party_id:
            raise LocalProtocolError(f"a snapshot of party {stored.party_id}, not of party {client.party_id}")
        if round_index is not None and stored.round_index != round_index:
            raise LocalProtocolError(f"a snapshot of round {stored.round_index}, not of round {round_index}")
        client.stage, client.sat_out_reason = stored.stage, stored.sat_out_reason
        client.training_seconds, client.chosen = stored.training_seconds, stored.chosen
        if stored.stage is not RoundClientStage.CREATED:
            client._restore_round(stored)
        return client

    def _restore_round(self, stored: StoredRound) -> None:
        """Check a started round's fields against the round rules, the policy and the ledger, and
        bring both secure sums back (each checked by :meth:`SecAggClient.restore` too)."""
        settings, params, round_index = stored.settings, stored.psu_params, stored.round_index
        assert settings is not None and params is not None and round_index is not None and stored.real_ids is not None
        state, policy = self.state, self.state.policy
        sums = {}
        for name, data, min_choosers in (("psu", stored.psu, 1), ("rows", stored.rows, settings.min_choosers)):
            if data is not None:
                sums[name] = SecAggClient.restore(data, random_bytes=self._random_bytes, identity=state.identity,
                                                  trust=state.trust, policy=policy, min_choosers=min_choosers)
                if sums[name].party_id != self.party_id:
                    raise DecodeError("a secure sum of another party in this client's snapshot")
        psu, rows = sums.get("psu"), sums.get("rows")
        if rows is not None:
            psu_config = None if psu is None else psu.config
            try:
                _check_round_shape(settings, params, psu_config, rows.config, round_index, self.party_id)
            except RemoteProtocolError as exc:  # no live client keeps such a round: not a snapshot it wrote
                raise DecodeError(f"the snapshot's round breaks the round's rules: {exc}") from None
            _check_round_policy(policy, settings, params, psu_config, rows.config)
            self._check_restored_sums(stored, psu, rows)
        policy.check_rr(state.params)
        if stored.real_ids.shape[0] > settings.max_set_size or params.attempt >= settings.max_psu_attempts:
            raise DecodeError("a snapshot beyond the round's public caps")
        self._check_ledger(stored)
        self._round_index, self._settings, self._psu_params = round_index, settings, params
        self._psu_ceiling, self._real_ids, self._psu, self._rows = stored.psu_ceiling, stored.real_ids, psu, rows

    def _check_restored_sums(self, stored: StoredRound, psu: SecAggClient | None, rows: SecAggClient) -> None:
        """The rows' sum set up with the first attempt, the PSU's of the stored attempt and ceiling,
        and in malicious mode the joint advertisement of the first attempt still pairing the two."""
        params, settings = stored.psu_params, stored.settings
        assert params is not None and settings is not None
        parties = rows.config.party_ids
        if not rows.per_row or stored.psu_ceiling != _psu_ceiling(settings, len(parties)):
            raise DecodeError("the snapshot's rows' sum or PSU ceiling is not the round's")
        if params.union_bound > stored.psu_ceiling:  # any first bound up to the ceiling (the server's estimate)
            raise DecodeError("the snapshot's PSU table is not one its round allows")
        if psu is not None and (not set(psu.config.party_ids) <= set(parties)
                                or (params.attempt == 0 and psu.config.party_ids != parties)):
            raise DecodeError("the snapshot's PSU sum is over parties its round does not allow")
        joint_rows = rows.joint_advertisement
        joint_psu = None if psu is None else psu.joint_advertisement
        if (joint_rows is not None) != (self.state.identity is not None):
            raise DecodeError("a malicious-mode round's rows' sum is advertised jointly, and only then")
        if joint_rows is None or psu is None:
            return
        if params.attempt > 0:
            if joint_psu is not None:
                raise DecodeError("a PSU rerun advertises alone")
            return
        if (joint_psu is None or joint_psu[0] != "covered" or joint_rows[0] != "verifying"
                or joint_psu[1].digest != rows.config.digest or joint_rows[1].digest != psu.config.digest):
            raise DecodeError("the snapshot's two sums were not advertised jointly with each other")
        if joint_psu[2] is not None and joint_psu[2] != joint_rows[2]:
            raise DecodeError("the snapshot's PSU sum holds partner keys its rows' sum did not authenticate")
        if (joint_rows[2] is None) != (joint_psu[2] is None) and psu.stage is ClientStage.KEYS_ADVERTISED:
            raise DecodeError("the rows' sum authenticated keys that the PSU sum did not take")

    def _check_ledger(self, stored: StoredRound) -> None:
        """Stale snapshots the ledger shows (``protocols/submodel/spec.md``, "Snapshot"): the last PSU
        attempt it records for the round is the snapshot's, and nothing was released after the
        snapshot's stage (a report after ``sketch-sent``, an update after ``report-sent``); from
        ``report-sent`` on, the report is on record (a ledger rolled back past it is refused too)."""
        assert stored.psu_params is not None
        events = [event for event in self.state.ledger.events if event.round_index == stored.round_index]
        attempts = [i for i, event in enumerate(events) if isinstance(event, PrivacyEvent) and event.kind == "psu-attempt"]
        last = events[attempts[-1]] if attempts else None
        if not isinstance(last, PrivacyEvent) or last.parameters.get("attempt") != str(stored.psu_params.attempt):
            raise LocalProtocolError("a stale snapshot: the ledger records another PSU attempt of its round last")
        after = {event.kind for event in events[attempts[-1] + 1:]}
        stage = stored.stage
        if stage is RoundClientStage.SKETCH_SENT and after & {"release", "refusal", "update-release", "update-refusal"}:
            raise LocalProtocolError("a stale snapshot: the ledger records this round's report after it")
        if stage is RoundClientStage.REPORT_SENT and after & {"update-release", "update-refusal"}:
            raise LocalProtocolError("a stale snapshot: the ledger records this round's update after it")
        reported = stage in (RoundClientStage.REPORT_SENT, RoundClientStage.UPLOADING, RoundClientStage.COMPLETED)
        if reported and "release" not in after:
            raise LocalProtocolError("the ledger does not record the report this snapshot sent")

    # -- handlers -----------------------------------------------------------------------------

    def _on_round_start(self, message: SubmodelMessage) -> list[SubmodelMessage]:
        """Check the round's public settings and both sums against the round and the policy, then
        start the round (or a PSU rerun) in named steps."""
        assert isinstance(message, RoundStart)
        params, config, rows_config = message.psu_params, message.psu_config, message.rows_config
        if message.recipient != self.party_id or self.party_id not in config.party_ids:
            raise RemoteProtocolError("round start addressed to another party")
        _check_round_shape(message.settings, params, config, rows_config, message.round_index, self.party_id)
        # The client's own policy, before anything is allocated or released (protocols/submodel/spec.md).
        policy = self.state.policy
        _check_round_policy(policy, message.settings, params, config, rows_config)
        self._check_budgeted(message.round_index, lambda: policy.check_rr(self.state.params))
        self._check_budgeted(message.round_index, lambda: policy.check_psu_attempt(
            replay(self.state.ledger).psu_attempts.get(message.round_index, 0)))
        if self.stage is RoundClientStage.SKETCH_SENT:  # a rerun with fresh keys (and maybe a larger table)
            self._check_rerun(message)
        else:
            self._begin_round(message)
        return self._start_attempt(message)

    def _check_rerun(self, message: RoundStart) -> None:
        """A later PSU attempt keeps the round, its settings, session and rows' sum; it takes the next
        attempt, a bounded number of them, over no new parties, with no table above the ceiling."""
        params, settings = message.psu_params, message.settings
        assert self._psu_params is not None and self._settings is not None and self._psu is not None
        if (message.round_index != self._round_index or settings != self._settings
                or params.session_id != self._psu_params.session_id or params.attempt != self._psu_params.attempt + 1):
            raise RemoteProtocolError("a PSU rerun must keep the round and take the next attempt")
        # Each rerun sums the sketches again: a bounded number, over no new parties, never a table
        # larger than the most ids the first attempt's parties can hold.
        if (params.attempt >= settings.max_psu_attempts or params.union_bound > self._psu_ceiling
                or not set(message.psu_config.party_ids) <= set(self._psu.config.party_ids)):
            raise RemoteProtocolError("a PSU rerun beyond the attempts, the table size or the parties allowed")
        if self._rows is None or message.rows_config.encode() != self._rows.config.encode():
            raise RemoteProtocolError("a PSU rerun must keep the rows' secure sum")

    def _begin_round(self, message: RoundStart) -> None:
        """The first attempt: a table bound of at most the parties' caps (the server may size it from
        its estimate of the union, ``protocols/submodel/spec.md``, "Round r"); the real set is read once."""
        params, config, settings = message.psu_params, message.psu_config, message.settings
        if message.rows_config.party_ids != config.party_ids:
            raise RemoteProtocolError("the rows' secure sum must be over the PSU's parties")
        ceiling = _psu_ceiling(settings, len(config.party_ids))
        if params.attempt != 0 or not 1 <= params.union_bound <= ceiling:
            raise RemoteProtocolError("the first PSU attempt's table must be within the parties' public caps")
        self._psu_ceiling = ceiling
        self._round_index, self._settings = message.round_index, settings
        real = validate_ids(np.unique(np.asarray(self.state.client.index_set())), settings.universe)
        if real.shape[0] > settings.max_set_size:
            # Over the public cap: it sums an empty sketch (so its neighbours' secure sum is not
            # disturbed) and sits out at the union, as a client refused by its budget does.
            self.sat_out_reason = "oversized"
            real = real[:0]
        self._real_ids = real

    def _start_attempt(self, message: RoundStart) -> list[SubmodelMessage]:
        """Start the PSU's sum (and, on the first attempt, the rows'); the attempt goes on the ledger."""
        params, config, settings = message.psu_params, message.psu_config, message.settings
        assert self._real_ids is not None
        self._psu_params = params
        identity, trust, policy = self.state.identity, self.state.trust, self.state.policy
        psu = SecAggClient(config, self.party_id, random_bytes=self._random_bytes, policy=policy,
                           identity=identity, trust=trust)
        rows = None
        if self.stage is RoundClientStage.CREATED:  # malicious too when identities are configured
            rows = SecAggClient(message.rows_config, self.party_id, random_bytes=self._random_bytes, policy=policy,
                                min_choosers=settings.min_choosers, per_row=True, identity=identity, trust=trust)
        self._psu = psu
        self._store_line(psu_attempt_event(self.state.ledger, message.round_index, params.attempt))
        # The sketch is encoded when its shares are in (``_on_psu_message``): a table-sized vector per
        # client exists only while it masks, never for all clients of a simulation at once.
        if rows is not None and identity is not None:
            # Malicious mode, first attempt: one signature over both sums' keys (secagg spec §14.8);
            # the rows' sum (full graph, same parties) checks the peers' joint signatures, the PSU's
            # takes its peers' keys from that check.
            psu_out, rows_out = start_jointly(psu, rows)
        else:
            psu_out, rows_out = psu.start(), (rows.start() if rows is not None else [])
        out: list[SubmodelMessage] = [PhaseMessage(Phase.PSU, params.attempt, m) for m in psu_out]
        if rows is not None:  # its keys go out with the PSU's
            self._rows = rows
            out += [PhaseMessage(Phase.ROWS, 0, m) for m in rows_out]
        self.stage = RoundClientStage.SKETCH_SENT
        return out

    def _store_line(self, line: str) -> None:
        if self.state.store is not None:
            self.state.store.append_ledger_line(line)

    def _check_budgeted(self, round_index: int, check: Callable[[], None]) -> None:
        """Run a policy check that concerns the privacy budget; a refusal is also written to the ledger."""
        try:
            check()
        except PolicyViolation as exc:
            self._store_line(refusal_event(self.state.ledger, round_index, f"policy: {exc}"))
            raise

    def _on_psu_message(self, message: SubmodelMessage) -> list[SubmodelMessage]:
        assert isinstance(message, PhaseMessage) and self._psu is not None and self._psu_params is not None
        if message.attempt != self._psu_params.attempt:
            raise RemoteProtocolError("a secure-aggregation message of another PSU attempt")
        psu = self._psu
        out = psu.receive(message.payload)
        if psu.stage is ClientStage.AWAITING_INPUT:  # the shares are in: encode the sketch and mask it
            assert self._real_ids is not None
            out = out + psu.submit_input(encode_set(self._psu_params, self._real_ids, random_bytes=self._random_bytes))
        return [PhaseMessage(Phase.PSU, message.attempt, m) for m in out]

    def _on_union(self, message: SubmodelMessage) -> list[SubmodelMessage]:
        assert isinstance(message, UnionBroadcast) and self._psu is not None and self._settings is not None
        if message.round_index != self._round_index:
            raise RemoteProtocolError("the union belongs to another round")
        if self._psu.stage not in (ClientStage.INPUT_SENT, ClientStage.SIGNED, ClientStage.COMPLETED):
            raise RemoteProtocolError("the union arrived before this client's sketch was summed")
        union = message.ids
        if union.size and int(union[-1]) >= self._settings.universe:
            raise RemoteProtocolError("the union holds ids outside the universe")
        assert self._psu_params is not None
        limit = self._union_limit()
        if union.size > limit:  # no honest union holds more ids (a decoded table may exceed its nominal bound)
            raise RemoteProtocolError(f"the union holds {union.size} ids, above the PSU table's bound {limit} "
                                      f"(its cells, at most the {self._psu_ceiling} ids the parties can hold)")
        if self._rows is None or self._rows.stage is not ClientStage.AWAITING_INPUT:
            raise RemoteProtocolError("the union arrived before the rows' secure sum was set up")
        self._psu = None  # its keys and shares are no longer needed
        state = self.state
        assert self._round_index is not None and self._real_ids is not None
        if self.sat_out_reason == "oversized":  # nothing released, nothing on the ledger
            self._rows = None
            self.stage = RoundClientStage.SAT_OUT
            return [SitOut(self.party_id, self._round_index)]
        try:
            part = participate(state.ledger, state.memo, state.params, union, self._real_ids, self._round_index,
                               random_bytes=self._random_bytes)
        except BudgetExceeded:
            line = refusal_event(state.ledger, self._round_index)  # costs nothing, but is on the record
            if state.store is not None:
                state.store.append_ledger_line(line)
            self.sat_out_reason = "budget"
            self._rows = None
            self.stage = RoundClientStage.SAT_OUT
            return [SitOut(self.party_id, self._round_index)]
        if state.store is not None:  # the memo (carrying the ledger line), then the line, before S''_i leaves
            state.store.save_memo(part.memo)
            state.store.append_ledger_line(part.ledger_line)
        state.memo = part.memo
        self.chosen = np.asarray(part.randomized.chosen_ids, dtype=np.uint64)
        self.stage = RoundClientStage.REPORT_SENT
        return [RandomizedSetReport(self.party_id, self.chosen, self._round_index)]

    def _union_limit(self) -> int:
        assert self._psu_params is not None
        return _union_limit(self._psu_params, self._psu_ceiling)

    def _on_download(self, message: SubmodelMessage) -> list[SubmodelMessage]:
        assert isinstance(message, RowDownload) and self._settings is not None and self.chosen is not None
        settings, plan, config = self._settings, message.plan, message.config
        if message.recipient != self.party_id or plan.party_id != self.party_id or self.party_id not in config.party_ids:
            raise RemoteProtocolError("row download addressed to another party")
        if message.round_index != self._round_index:
            raise RemoteProtocolError("the row download belongs to another round")
        rows_sum = self._rows
        assert rows_sum is not None
        if config.encode() != rows_sum.config.encode() or plan.width != config.dim:
            raise RemoteProtocolError("the row download must use the rows' secure sum set up at the round's start")
        if rows_sum.stage is not ClientStage.AWAITING_INPUT:
            raise RemoteProtocolError("the row download arrived before the rows' shares")
        real_count = plan.rows.shape[0] - message.dense_rows
        rows, dense_ids = plan.rows[:real_count], plan.rows[real_count:]
        # Uploading a row it did not report would tell the server whether it holds that row.
        if not np.isin(rows, self.chosen, assume_unique=True).all():
            raise RemoteProtocolError("the plan asks for rows outside this client's randomized set")
        expected_dense = np.arange(settings.universe, settings.universe + message.dense_rows, dtype=np.uint64)
        if not np.array_equal(dense_ids, expected_dense) or message.dense_rows * (plan.width - 1) < message.dense.shape[0]:
            raise RemoteProtocolError("the dense pseudo-rows do not match the dense parameters")
        if message.dense.shape[0] <= (message.dense_rows - 1) * (plan.width - 1):
            raise RemoteProtocolError("more dense pseudo-rows than the dense parameters need")
        # Who masks each row with it: every partner must be a party of this sum, and every row needs
        # min_choosers - 1 partners (the dense rows: everybody), or its block would reach the server
        # under the self mask alone, which is removed at unmasking.
        # On a sparse graph the partners must be its neighbours, which it derives from the config: the
        # server cannot pick them (protocols/submodel/spec.md, "Sparse rows").
        partner_ids, offsets, positions = plan.sharing_arrays()
        if not np.isin(partner_ids, np.fromiter(rows_sum.neighbours, dtype=np.int64)).all():
            raise RemoteProtocolError("the plan names partners outside this client's neighbours in the secure sum")
        partners = np.bincount(positions, minlength=plan.rows.shape[0])  # distinct positions per peer
        peers = int(partner_ids.shape[0])
        # Every party of the plan chooses the dense rows; the plan has at least the policy's parties.
        if message.dense_rows and (int(partners[real_count:].min()) != peers
                                   or peers + 1 < self.state.policy.min_parties):
            raise RemoteProtocolError("the dense pseudo-rows must be shared with every other party of the plan")
        self._check_dense_partners((partner_ids, offsets, positions), real_count, message.dense_rows,
                                   rows_sum.mask_peers)
        if real_count and int(partners[:real_count].min()) < settings.min_choosers - 1:
            raise RemoteProtocolError(f"the plan has rows with fewer than {settings.min_choosers} choosers")
        width = plan.width - 1
        if settings.ddp is None:
            quantizer = Quantizer(settings.modulus, settings.clip, config.clients, max_weight=float(settings.max_samples))
        assert self._real_ids is not None
        held = np.flatnonzero(np.isin(rows, self._real_ids, assume_unique=True))  # rows it really holds
        started = self.clock()
        result = self.state.client.train(rows[held], message.rows[held], message.dense.copy())
        self.training_seconds += self.clock() - started
        check_training_result(self.party_id, result, rows[held], width, message.dense.shape[0])
        deltas = np.zeros((real_count, width))
        counts = np.zeros(real_count)
        where = np.searchsorted(rows, np.asarray(result.row_ids, dtype=np.uint64))
        deltas[where] = result.row_deltas
        counts[where] = np.minimum(result.row_counts, settings.max_samples)
        dense_delta = np.zeros(message.dense_rows * width)
        dense_delta[: message.dense.shape[0]] = result.dense_delta
        values = np.vstack([deltas, dense_delta.reshape(message.dense_rows, width)])
        weights = np.concatenate([counts, np.full(message.dense_rows, float(min(result.samples, settings.max_samples)))])
        if settings.ddp is None:
            if self.state.policy.ddp.required:
                raise RemoteProtocolError("this client requires distributed DP for its updates; the round has none")
            encoded: np.ndarray | None = quantizer.encode_rows(values, weights, random_bytes=self._random_bytes).reshape(-1)
        else:  # noised before the rows' sum masks it (protocols/ddp/spec.md)
            encoded = self._privatize(values, weights / settings.max_samples, message.dense_rows, config)
            if encoded is None:  # refused by its update budget: it does not upload (a dropout of the rows' sum)
                self.sat_out_reason = "update-budget"
                self._rows = None
                self.stage = RoundClientStage.SAT_OUT
                return []
        out = rows_sum.submit_input(encoded, row_plan=plan)  # masked at once: the shares are in
        self.stage = RoundClientStage.UPLOADING
        return [PhaseMessage(Phase.ROWS, 0, m) for m in out]

    def _privatize(self, values: np.ndarray, weights: np.ndarray, dense_rows: int, config) -> np.ndarray | None:
        """Clip, quantize and noise the upload (``protocols/ddp/spec.md``); the update event is stored first.

        Noise per row is sized for the fewest contributors the client can count on: the plan's
        ``min_choosers`` less the dropouts the secure sum tolerates and the colluders it assumes;
        the dense rows for the secure sum's threshold less the colluders. None when the update
        budget filter refuses (a refusal line is stored).
        """
        settings, policy = self._settings, self.state.policy.ddp
        assert settings is not None and settings.ddp is not None and self._round_index is not None
        ddp = settings.ddp
        row_floor = noise_floor(settings.min_choosers, config.clients, config.threshold, policy.colluders)
        dense_floor = max(1, config.threshold - policy.colluders)
        noise = NoisePlan(client_variance(ddp, row_floor, policy.minimum_noise_multiplier),
                          client_variance(ddp, dense_floor, policy.minimum_noise_multiplier))
        width = values.shape[1] + 1
        row_coordinates, dense_coordinates = (values.shape[0] - dense_rows) * width, dense_rows * width
        check_overflow(settings.modulus, config.clients, ddp.sensitivity, max(noise.row_variance, noise.dense_variance),
                       row_coordinates + dense_coordinates)
        rho = release_rho(ddp.sensitivity, [(noise.row_variance, row_floor, row_coordinates),
                                            (noise.dense_variance, dense_floor, dense_coordinates)])
        ledger, client_id = self.state.ledger, self.state.ledger.client_id
        try:
            replay(ledger).check_update(rho, policy.delta, policy.epsilon_cap, row_coordinates + dense_coordinates)
        except BudgetExceeded:
            line = ledger.append(UpdateEvent(client_id, self._round_index, "update-refusal"))
            if self.state.store is not None:
                self.state.store.append_ledger_line(line)
            return None
        signed = privatize(values, weights, dense_rows, settings.clip, ddp, noise, random_bytes=self._random_bytes)
        event = UpdateEvent(client_id, self._round_index, "update-release", sensitivity=ddp.sensitivity,
                            row_variance=noise.row_variance, dense_variance=noise.dense_variance, row_floor=row_floor,
                            dense_floor=dense_floor, row_coordinates=row_coordinates,
                            dense_coordinates=dense_coordinates, rho=rho, delta=float(policy.delta))
        line = ledger.append(event)
        if self.state.store is not None:  # durable before anything of the update leaves
            self.state.store.append_ledger_line(line)
        return to_modulus(signed, settings.modulus).reshape(-1)

    @staticmethod
    def _check_dense_partners(sharing: tuple[np.ndarray, np.ndarray, np.ndarray], real_count: int, dense_rows: int,
                              holders: frozenset[int]) -> None:
        """Every party whose rows' shares this client holds must share the dense pseudo-rows with it.

        A plan naming only a few of them (who then drop, their mask keys recovered at unmasking) would
        leave the dense block -- and, through the counts, which reported rows the client really holds
        -- under masks the server can remove; the DDP dense floor (t - colluders) rests on it too.
        Parties that did not report are planned for the dense rows as well, and are dropouts."""
        if not dense_rows:
            return
        peers, offsets, positions = sharing  # the plan's sharing_arrays()
        owner = np.repeat(np.arange(peers.shape[0]), np.diff(offsets))
        dense_counts = np.bincount(owner[positions >= real_count], minlength=peers.shape[0])
        dense_partners = set(peers[dense_counts == dense_rows].tolist())
        if not holders <= dense_partners:
            raise RemoteProtocolError("the dense pseudo-rows must be shared with every party of the rows' sum "
                                      "whose shares this client holds")

    def _on_rows_message(self, message: SubmodelMessage) -> list[SubmodelMessage]:
        assert isinstance(message, PhaseMessage) and self._rows is not None
        if message.attempt != 0:
            raise RemoteProtocolError("the rows' secure sum has no attempts")
        if self.stage is RoundClientStage.SKETCH_SENT and self._rows.stage not in (
                ClientStage.KEYS_ADVERTISED, ClientStage.SHARES_SENT):
            raise RemoteProtocolError("the rows' secure sum is past its setup before the union")
        before = self._rows.stage
        out: list[SubmodelMessage] = [PhaseMessage(Phase.ROWS, 0, m) for m in self._rows.receive(message.payload)]
        partner = self._rows.partner_keys
        if before is ClientStage.KEYS_ADVERTISED and partner is not None:  # jointly advertised: hand on the keys
            assert self._psu is not None
            self._psu.accept_partner_keys(partner)
        if self._rows.stage is ClientStage.COMPLETED:
            self.stage = RoundClientStage.COMPLETED
        return out
