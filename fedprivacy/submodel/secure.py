"""One secure submodel round, in process: PSU -> randomized response -> per-row secure aggregation.

This is the engine the simulation uses. It drives the sans-I/O protocol cores and the in-memory
secure-aggregation driver (no I/O); a per-round composition as client and server state machines
with their own wire format is not built yet.

Round r, for the clients given:
1. PSU (masked IBLT summed by secure aggregation mod p) of the clients' real index sets (the rows
   their training data touches): the union U. Clients whose sketch did not arrive sit the round out.
2. Each remaining client answers "do you hold j?" for every j in U by double randomized response with
   its own parameters (``participate``: budget filter, ledger line written before anything leaves);
   a client over its budget sits the round out. The server sees each randomized set S''_i.
3. Rows of U chosen by fewer than ``min_choosers`` clients are dropped from everybody's plan (the
   server knows them from the S''_i; no data about them leaves any client); the report counts them.
4. Each client downloads the planned rows of S''_i and the dense parameters, trains on the planned
   rows it really holds (S_i intersect S''_i, thin rows excluded), and uploads for every planned row
   (count * delta, count) quantized -- zero where it holds none -- plus the sample-weighted dense
   delta cut into rows above the universe that every client chooses. The upload is summed per row
   by secure aggregation over the full graph (every chooser of a row masks it with every other).
5. The server applies W_j += sum(count * delta_j) / sum(count_j) for rows with a positive count, and
   moves the dense head by the sample-weighted mean.

What the server learns: U, every S''_i, the per-row and dense sums over the surviving choosers, and
who dropped when. Not a real index set, not a single update, not how many clients hold a row --
except through the paper's Theorem 5.5 events (a row chosen by exactly one real holder and no one
else is dropped by the min_choosers rule; dropouts after planning can still leave one chooser).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..accounting import Ledger, participate, refusal_event, replay
from ..errors import BudgetExceeded, InvalidParameters
from ..hazmat.field import Modulus
from ..hazmat.prg import RandomSource, system_random_bytes
from ..ldp import PermanentMemo, RRParameters
from ..psu import PSUParameters, run_psu_round
from ..secagg import DropoutSchedule, DropStage, Quantizer, RowPlan, SecAggConfig, run_secagg_round
from ..adapters.interfaces import SubmodelClient, SubmodelServer
from ..adapters.storage import ClientStore
from .messages import RandomizedSetReport, decode_submodel_message

__all__ = ["ClientState", "RoundSettings", "RoundDrops", "RoundOutcome", "secure_round"]


@dataclass
class ClientState:
    """A client's private, persistent state (on its device): its trainer, parameters, ledger, memo."""

    client: SubmodelClient
    params: RRParameters
    ledger: Ledger
    memo: PermanentMemo
    store: ClientStore | None = None  # where the ledger and memo persist (None: in memory only)

    @classmethod
    def new(
        cls, client: SubmodelClient, params: RRParameters, epsilon_cap: float = float("inf"), directory: str | None = None
    ) -> ClientState:
        """Fresh state; with ``directory`` the ledger and memo live on disk there (and are reloaded)."""
        client_id = f"client-{client.client_id}"
        if directory is None:
            ledger, _ = Ledger.create(client_id, epsilon_cap)
            return cls(client, params, ledger, PermanentMemo.empty(client_id, params))
        store = ClientStore(directory, client_id)
        ledger = store.open_ledger(epsilon_cap)
        return cls(client, params, ledger, store.load_memo(params, ledger), store)


@dataclass(frozen=True)
class RoundSettings:
    universe: int  # row ids are in [0, universe); the dense parameters travel as rows above it
    clip: float = 1.0  # per-parameter clip of row and dense deltas before quantization
    max_samples: int = 10_000  # public bound on a client's examples (row counts and dense weight)
    max_set_size: int = 1_000  # public cap on a client's index set: sizes the PSU table (n x cap)
    min_choosers: int = 2
    dropout_fraction: float = 0.1
    corrupt_fraction: float = 0.05
    modulus: Modulus = Modulus.U64

    def __post_init__(self) -> None:
        if self.min_choosers < 1 or self.max_samples < 1 or self.max_set_size < 1:
            raise InvalidParameters("min_choosers, max_samples and max_set_size must be positive")


@dataclass(frozen=True)
class RoundDrops:
    """Scripted dropouts: during the PSU's secure aggregation, after the PSU, or during the upload's."""

    psu: dict[int, DropStage] = field(default_factory=dict)
    after_psu: frozenset[int] = frozenset()
    upload: dict[int, DropStage] = field(default_factory=dict)


@dataclass
class RoundOutcome:
    union_size: int
    participants: int
    refused: list[int]
    thin_rows: int
    rows_updated: int
    chosen_mean: float
    upload_bytes_median: float
    download_bytes_median: float
    psu_seconds: float
    ldp_seconds: float
    aggregation_seconds: float
    server_seconds: float
    client_seconds_median: float
    epsilon_spent_max: float
    contributors: frozenset[int]
    oversized: list[int] = field(default_factory=list)  # clients over max_set_size (sat the round out)
    training_seconds: float = 0.0  # local training inside the upload step (excluded from aggregation_seconds)
    chosen: dict[int, np.ndarray] = field(default_factory=dict)  # the randomized sets (known to the server)
    planned_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))


def _check_result(party: int, result: object, given: np.ndarray, width: int, dense_size: int) -> None:
    """A client's training result must update distinct rows it was given, with the right shapes."""
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
    if counts.shape != row_ids.shape or (counts.size and counts.min() < 0):
        problems.append("row_counts must be one count >= 0 per row")
    if dense_delta.shape != (dense_size,):
        problems.append(f"dense_delta must have shape ({dense_size},)")
    if not isinstance(samples, (int, np.integer)) or samples < 0:
        problems.append("samples must be an integer >= 0")
    if problems:
        raise InvalidParameters(f"client {party}'s training result is invalid: " + "; ".join(problems))


def _full_graph_config(parties: list[int], dim: int, modulus: Modulus, settings: RoundSettings) -> SecAggConfig:
    return SecAggConfig.create(
        parties, dim, modulus, full_graph=True,
        dropout_fraction=settings.dropout_fraction, corrupt_fraction=settings.corrupt_fraction,
    )


def secure_round(
    states: dict[int, ClientState],
    server: SubmodelServer,
    settings: RoundSettings,
    round_index: int,
    drops: RoundDrops | None = None,
    observer: Callable[[str, int, int, bytes], None] | None = None,
    random_source: Callable[[int], RandomSource] | None = None,
) -> RoundOutcome:
    """Run one round: updates ``server``'s model and the clients' ledgers and memos in place.

    ``observer(session, sender, recipient, data)`` sees the bytes of every message of the round
    (session "psu", "report" or "rows"; the server is party 0) -- for transcripts and proofs.
    ``random_source(party)`` gives each client's randomness (default: the OS CSPRNG); seeded sources
    make a simulated round reproducible."""

    streams: dict[int, RandomSource] = {}

    def source(party: int) -> RandomSource:
        """One stream per client for the whole round, consumed in order by every step."""
        if random_source is None:
            return system_random_bytes
        if party not in streams:
            streams[party] = random_source(party)
        return streams[party]


    def tap(session: str) -> Callable[[int, int, bytes], None] | None:
        return None if observer is None else (lambda sender, recipient, data: observer(session, sender, recipient, data))

    drops = drops or RoundDrops()
    width = server.row_width
    dense_rows = -(-server.dense_size // width)  # the dense parameters as rows above the universe
    dense_ids = np.arange(settings.universe, settings.universe + dense_rows, dtype=np.uint64)
    client_seconds: dict[int, float] = dict.fromkeys(states, 0.0)

    # 1. Private set union of the real index sets.
    started = time.perf_counter()
    # Settings that cannot work are refused before any client spends budget: the quantizer's overflow
    # budget is checked for every client of the round (an upper bound on the summands).
    Quantizer(settings.modulus, settings.clip, len(states), max_weight=float(settings.max_samples))
    sets = {p: np.unique(s.client.index_set()) for p, s in states.items()}
    # A client whose set exceeds the public cap sits the round out (checked on its device).
    oversized = sorted(p for p, rows in sets.items() if rows.shape[0] > settings.max_set_size)
    sets = {p: rows for p, rows in sets.items() if p not in oversized}
    if len(sets) < 2:
        raise InvalidParameters("fewer than two clients can take part in this round")
    # The table is sized from public numbers only (never from the private set sizes).
    bound = min(len(states) * settings.max_set_size, settings.universe)
    psu_params = PSUParameters(settings.universe, bound, os.urandom(32))
    party_ids = sorted(sets)
    psu = run_psu_round(
        sets, psu_params,
        lambda p: SecAggConfig.create(party_ids, p.vector_length, Modulus.P61,
                                      dropout_fraction=settings.dropout_fraction,
                                      corrupt_fraction=settings.corrupt_fraction),
        DropoutSchedule(drops.psu),
        observer=tap("psu"),
        random_source=None if random_source is None else source,
    )
    psu_seconds = time.perf_counter() - started
    union = psu.union

    # 2. Randomized response, each client under its own budget.
    started = time.perf_counter()
    chosen: dict[int, np.ndarray] = {}
    refused = []
    for party in sorted(psu.contributors - drops.after_psu):
        state = states[party]
        t0 = time.perf_counter()
        try:
            part = participate(state.ledger, state.memo, state.params, union, sets[party], round_index,
                               random_bytes=source(party))
        except BudgetExceeded:
            refused.append(party)
            line = refusal_event(state.ledger, round_index)  # costs nothing, but is on the record
            if state.store is not None:
                state.store.append_ledger_line(line)
            continue
        finally:
            client_seconds[party] += time.perf_counter() - t0
        if state.store is not None:  # the ledger line and the memo are on disk before S''_i leaves
            state.store.append_ledger_line(part.ledger_line)
            state.store.save_memo(part.memo)
        state.memo = part.memo
        report_bytes = RandomizedSetReport(party, part.randomized.chosen_ids).to_bytes()
        if observer is not None:
            observer("report", party, 0, report_bytes)
        chosen[party] = decode_submodel_message(report_bytes).ids  # what the server receives
    ldp_seconds = time.perf_counter() - started
    if len(chosen) < 2:
        raise InvalidParameters("fewer than two clients are left for the aggregation")
    # (Clients refused by their budget filter or absent from the PSU sit the round out.)

    # 3. Plan: drop rows with too few choosers; the dense head is a row everyone chooses.
    started = time.perf_counter()
    all_rows = np.unique(np.concatenate(list(chosen.values()))) if chosen else np.zeros(0, np.uint64)
    choosers = np.zeros(all_rows.shape[0], dtype=np.int64)
    for rows in chosen.values():
        choosers[np.searchsorted(all_rows, rows)] += 1
    kept_rows = all_rows[choosers >= settings.min_choosers]
    planned = {p: np.concatenate([np.intersect1d(rows, kept_rows, assume_unique=True), dense_ids]) for p, rows in chosen.items()}
    plan = RowPlan(np.concatenate([kept_rows, dense_ids]), width + 1, planned)
    quantizer = Quantizer(settings.modulus, settings.clip, len(planned), max_weight=float(settings.max_samples))
    server_planning = time.perf_counter() - started

    # 4. Download, local training, quantized upload (computed when the client masks).
    download_bytes = {}
    training = [0.0]

    dense = np.zeros(dense_rows * width)
    dense[: server.dense_size] = server.dense()

    def upload(party: int) -> np.ndarray:
        t0 = time.perf_counter()
        state = states[party]
        rows = planned[party][: planned[party].shape[0] - dense_rows]
        downloaded = server.rows(rows)  # W[S''_i] (what the server serves; the dense head too)
        download_bytes[party] = (rows.shape[0] + dense_rows) * width * 4  # as float32
        held = np.flatnonzero(np.isin(rows, sets[party], assume_unique=True))  # rows it really holds
        t_train = time.perf_counter()
        result = state.client.train(rows[held], downloaded[held], dense[: server.dense_size].copy())
        training[0] += time.perf_counter() - t_train
        _check_result(party, result, rows[held], width, server.dense_size)
        deltas = np.zeros((rows.shape[0], width))
        counts = np.zeros(rows.shape[0])
        where = np.searchsorted(rows, np.asarray(result.row_ids, dtype=np.uint64))
        deltas[where] = result.row_deltas
        counts[where] = np.minimum(result.row_counts, settings.max_samples)
        dense_delta = np.zeros(dense_rows * width)
        dense_delta[: server.dense_size] = result.dense_delta
        values = np.vstack([deltas, dense_delta.reshape(dense_rows, width)])
        weights = np.concatenate([counts, np.full(dense_rows, min(result.samples, settings.max_samples))])
        encoded = quantizer.encode_rows(values, weights, random_bytes=source(party)).reshape(-1)
        client_seconds[party] += time.perf_counter() - t0
        return encoded

    config = _full_graph_config(sorted(planned), plan.dim, settings.modulus, settings)
    started = time.perf_counter()
    report = run_secagg_round(config, upload, DropoutSchedule(drops.upload), row_plan=plan, observer=tap("rows"),
                              random_source=None if random_source is None else source)
    aggregation_seconds = time.perf_counter() - started - training[0]
    for party in planned:
        client_seconds[party] += report.client_seconds.get(party, 0.0)
    if report.result is None:
        assert report.aborted is not None
        raise report.aborted

    # 5. Apply the per-row averages and the dense step.
    started = time.perf_counter()
    sums, counts = quantizer.decode_rows(report.result.reshape(-1, width + 1))
    row_count = kept_rows.shape[0]
    row_sums, row_counts = sums[:row_count], counts[:row_count]
    trained = row_counts > 0
    server.apply_row_updates(kept_rows[trained], row_sums[trained] / row_counts[trained][:, None])
    moved = int(trained.sum())
    if dense_rows and counts[-1] > 0:
        server.apply_dense_update(sums[row_count:].reshape(-1)[: server.dense_size] / counts[-1])
    server_seconds = psu.reports[-1].server_seconds + server_planning + report.server_seconds + time.perf_counter() - started

    survivors = [p for p in planned if p in report.input_ids]
    uploads = [report.upload_bytes[p] + psu.reports[-1].upload_bytes[p] for p in survivors]
    spent = [replay(states[p].ledger).spent() for p in states]
    outcome = RoundOutcome(
        union_size=int(union.shape[0]),
        participants=len(survivors),
        refused=refused,
        thin_rows=int((choosers < settings.min_choosers).sum()),
        rows_updated=moved,
        chosen_mean=float(np.mean([len(v) for v in chosen.values()])),
        upload_bytes_median=float(statistics.median(uploads)) if uploads else 0.0,
        download_bytes_median=float(statistics.median(
            download_bytes[p] + report.download_bytes[p] + psu.reports[-1].download_bytes[p] + 8 * union.shape[0]
            for p in survivors)) if survivors else 0.0,
        psu_seconds=psu_seconds,
        ldp_seconds=ldp_seconds,
        aggregation_seconds=aggregation_seconds,
        server_seconds=server_seconds,
        client_seconds_median=float(statistics.median(client_seconds[p] for p in survivors)) if survivors else 0.0,
        epsilon_spent_max=max(spent) if spent else 0.0,
        contributors=frozenset(survivors),
        training_seconds=training[0],
        chosen=chosen,
        planned_rows=kept_rows,
        oversized=oversized,
    )
    return outcome
