"""The run behind ``fedprivacy simulate`` (``--mode submodel``), as named steps: set up, evaluate the
initial model, play each round (reporting who sat out and why), build and write the report, print it.

``--seed`` seeds everything: the workload and initial model (numpy, public simulation data), which
clients drop, and each client's protocol randomness per round (a deterministic stream derived from
the seed, the round and the client: keys, masks and randomized-response coins), so a run repeats
exactly. Ctrl-C stops at the next message boundary (see :mod:`.interrupt`).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from ..errors import InvalidParameters, RoundAborted
from . import ddp as ddp_options, interrupt
from .compare import _advance_baselines, _baseline_aucs, _compare_table, _start_baselines
from .evaluate import _evaluate
from .output import dumps
from .rr import _rr_params_or_default

if TYPE_CHECKING:
    from ..adapters.lock import OutputLock
    from ..adapters.ray_executor import RayExecutor
    from ..ldp import RRParameters
    from ..secagg.unmasking import UnmaskingWorkers
    from ..submodel.client import DeviceState
    from ..submodel.reference import ReferenceModel
    from ..submodel.settings import RoundSettings
    from ..submodel.workload import Workload
    from .progress import Progress


class _Training(TypedDict):
    """Local trainings finished in the round under way (the progress line's sub-count)."""

    stage: str
    done: int
    expected: int


def submodel_memory(args: argparse.Namespace, params: RRParameters, union: int | None = None) -> float:
    """A rough upper estimate of the run's peak memory in bytes, checked before the clients and the model
    are built: what a round holds for every client at once, from the sizes, the randomized-response
    ``params`` and ``union`` (the workload's union when known; else the most ids the clients can hold,
    clients x items capped by the universe, which overstates a skewed workload's union several times).

    Per union id and client: the permanent memo (13 bytes) and the randomized set S'' (a fraction of the
    union: the chance that an id a client does not hold is reported), which the server keeps with its
    positions and plan entries (8 + 8 + 8 + 12 bytes an entry). Per client and peer, the secure sums'
    packed records (~250 bytes; every other client on the rows' full graph, which turns sparse above
    1,000 clients with at most ~1,000 neighbours, and the set union's SecAgg+ neighbours). Per universe
    id, the model (and the comparison's baselines) and the synthetic workload's tables. One client's row
    download, update and upload at a time, the server's sums and tables (a few words per union id) and
    64 MiB besides. Against ``bench round``'s measured peaks (CPP2, 300 items, d = 18): 2.86 GB estimated
    for 2.40 GB at 1,000 clients over 10^6 ids (union 89,922), 16.4 GB for 10.75 GB at 2,000 clients
    over 10^7 ids (union 207,612)."""
    universe = 1700 if args.dataset == "movielens-100k" else args.universe
    items = 1000 if args.dataset == "movielens-100k" else args.items
    models = 3 if args.compare else 1
    per_id = 4 * args.dim * models * 3 + 8 * 20  # float32 tables and their updates; ids, popularity, latents
    held = min(universe, args.clients * items) if union is None else max(0, int(union))
    reported = float(params.p2 * params.p3 + (1 - params.p2) * params.p4)  # an id the client does not hold
    chosen = min(held, reported * held + items)  # |S''| at most
    peers = min(args.clients - 1, 1024) + min(args.clients - 1, 128)  # the rows' sum (sparse above 1,000) and the PSU's
    per_client = 13 * held + (8 + 36) * chosen + 250 * peers
    one_client = 8 * (args.dim + 1) * chosen * 6  # its rows, update, encoded and masked upload
    sums = 8 * held * (3 * 4.2 + 3 * (args.dim + 1))  # the set-union table and the rows' sum, with masks
    return float(universe * per_id + args.clients * per_client + one_client + sums + (64 << 20))


class _ReportingClient:
    """A submodel client that calls ``on_train()`` after each local training: the progress hook."""

    def __init__(self, inner, on_train) -> None:
        self.inner = inner
        self.client_id = inner.client_id
        self.on_train = on_train

    def index_set(self) -> np.ndarray:
        return self.inner.index_set()

    def train(self, row_ids: np.ndarray, rows: np.ndarray, dense: np.ndarray):
        result = self.inner.train(row_ids, rows, dense)
        self.on_train()
        return result


@dataclass
class _Simulation:
    """Everything one ``simulate`` run holds between its steps."""

    args: argparse.Namespace
    progress: Progress
    params: RRParameters
    workload: Workload
    states: dict[int, DeviceState]
    server: ReferenceModel
    settings: RoundSettings
    rng: np.random.Generator
    out_dir: Path | None
    training: _Training = field(default_factory=lambda: _Training(stage="", done=0, expected=1))
    baselines: dict | None = None
    rows: list[dict] = field(default_factory=list)
    round_offset: int = 0  # protocol round indices continue after the last one the clients' ledgers hold
    executor: RayExecutor | None = None  # the clients' host (--executor): None, this process
    union_estimate: int | None = None  # the last round's union size: sizes the next first PSU table
    server_workers: UnmaskingWorkers | None = None  # the server's unmasking processes (--server-workers)


def _last_round_index(states: dict) -> int:
    """The highest protocol round index any client's ledger records (0: fresh ledgers).

    Round indices are part of the accounting (a client counts its PSU attempts per round index and
    refuses a fourth), so a run continuing earlier ledgers numbers its rounds after theirs."""
    return max((event.round_index for state in states.values() for event in state.ledger.events), default=0)


def _simulate_submodel(args: argparse.Namespace) -> int:
    from .progress import Progress

    progress = Progress(args.rounds, "simulate", enabled=not args.quiet, width=20, show_count=False, plain_marks=2)
    lock = _lock_out_dir(args.out) if args.out else None  # one run at a time per --out
    try:
        with interrupt.deferred():
            return _run_submodel_simulation(args, progress)
    finally:
        progress.close()  # an error message must not land on the progress line
        if lock is not None:
            lock.release()


def _lock_out_dir(out: str) -> OutputLock:
    """Lock ``--out`` (a second run refuses); a lock left by a killed run is taken over, with a warning."""
    from ..adapters.lock import lock_directory
    from ..adapters.storage import remove_interrupted_writes

    lock = lock_directory(out)
    if lock.stale is not None:
        removed = remove_interrupted_writes(out)
        print(f"fedprivacy: warning: {out} was left locked by {lock.stale.description}, which is no longer "
              "running; the interrupted run's ledgers and memos are checked as they load"
              + (f" ({len(removed)} temporary files of its unfinished writes removed)" if removed else ""),
              file=sys.stderr)
    return lock


def _run_submodel_simulation(args: argparse.Namespace, progress) -> int:
    from ..adapters.local_workers import local_workers

    sim = _set_up(args, progress)
    _evaluate_initial_model(sim)
    with local_workers(args.server_workers or 1) as sim.server_workers:  # this machine's processes, closed after the rounds
        for round_index in range(1, args.rounds + 1):
            _note_interrupt(sim, round_index)
            interrupt.checkpoint()
            _play_round(sim, round_index)
    report = _build_report(sim)
    written, missing_plots = _write_outputs(sim, report)
    progress.close()
    if missing_plots is not None:  # a warning, shown even with --quiet
        print(missing_plots, file=sys.stderr)
    if sim.out_dir is not None:
        progress.log(f"{', '.join(written)} written under {sim.out_dir} (audit: fedprivacy audit {sim.out_dir})")
    _print_report(args, report, sim.rows, sim.baselines)
    return 0


def _note_interrupt(sim: _Simulation, round_index: int) -> None:
    done = f"after {round_index - 1} of {sim.args.rounds} rounds"
    if sim.out_dir is None:
        interrupt.note(f"stopped {done}; nothing was kept (no --out)")
    else:
        interrupt.note(
            f"stopped {done}; every client's ledger and memo under {sim.out_dir} records each answer it gave "
            "(report.json not written); run the same command again to continue them (the model restarts)"
        )


def _load_workload(args: argparse.Namespace):
    from ..submodel.demo import synthetic_workload

    if args.dataset == "movielens-100k":
        from ..adapters.movielens import load_movielens_100k

        if args.data_path is None:
            raise InvalidParameters("--dataset movielens-100k needs --data-path DIR (the folder holding u.data)")
        try:
            return load_movielens_100k(args.data_path, seed=args.seed, max_users=args.clients)
        except OSError as exc:
            raise InvalidParameters(f"--data-path: cannot read {exc.filename or args.data_path}: {exc.strerror}") from None
    return synthetic_workload(clients=args.clients, universe=args.universe, items_per_user=args.items, seed=args.seed)


def _banner(args: argparse.Namespace, workload, params) -> str:
    sizes = [np.unique(np.concatenate([c.train_items, c.test_items])).shape[0] for c in workload.clients]
    items = f"{sizes[0]} items" if min(sizes) == max(sizes) else f"{min(sizes)}..{max(sizes)} items (mean {np.mean(sizes):.0f})"
    return (
        f"fedprivacy simulate: secure submodel learning on {args.dataset}, {len(workload.clients)} clients x {items} "
        f"over {workload.universe} ids, d={args.dim}, {args.rounds} rounds, "
        f"p=({', '.join(params.as_strings().values())}), {args.dropout:.0%} dropout per round"
    )


def _earlier_run_note(out_dir: Path) -> str | None:
    ledgers = list((out_dir / "clients").glob("*/ledger.jsonl")) if (out_dir / "clients").is_dir() else []
    if not ledgers:
        return None
    return (f"fedprivacy: note: {out_dir} holds {len(ledgers)} clients' ledgers from an earlier run: the model starts "
            "afresh, and each client's ledger and memo continue (their spend adds up)")


def _open_states(args: argparse.Namespace, workload, params, out_dir: Path | None, trained) -> dict:
    from ..adapters.storage import ClientStore
    from ..client_settings import CLI_SETTINGS, client_policy_from_settings
    from ..submodel.client import DeviceState
    from ..submodel.reference import ReferenceTrainer
    from .rr import client_settings

    policy = ddp_options.with_client_ddp(args, client_policy_from_settings(client_settings(args), CLI_SETTINGS))
    cap = float("inf") if args.epsilon_cap is None else args.epsilon_cap
    # The training-progress hook reports to this process's terminal: clients on Ray run without it.
    local = getattr(args, "executor", None) != "ray"
    return {
        c.client_id: DeviceState.new(
            _ReportingClient(ReferenceTrainer(c), trained) if local else ReferenceTrainer(c), params, epsilon_cap=cap,
            store=None if out_dir is None else ClientStore(out_dir / "clients" / f"client-{c.client_id}",
                                                           f"client-{c.client_id}"),
            policy=policy,
        )
        for c in workload.clients
    }


def _set_up(args: argparse.Namespace, progress) -> _Simulation:
    """Parameters, workload, output folder, the clients' states and the initial model."""
    from ..submodel.demo import init_model
    from ..submodel.reference import ReferenceModel
    from ..submodel.settings import RoundSettings

    params = _rr_params_or_default(args)
    workload = _load_workload(args)
    progress.log(_banner(args, workload, params))
    out_dir = Path(args.out) if args.out else None
    interrupt.note("stopped before the first round; nothing was written")
    interrupt.hold()  # from here on the clients' ledgers and memos are opened and written
    if out_dir is not None:
        note = _earlier_run_note(out_dir)
        if note is not None:  # shown even with --quiet: the budgets carry over
            print(note, file=sys.stderr)
        out_dir.mkdir(parents=True, exist_ok=True)
    training = _Training(stage="", done=0, expected=1)  # local trainings finished in the round under way

    def trained() -> None:
        training["done"] += 1
        progress.update(stage=training["stage"], sub=(training["done"], training["expected"], "clients"))

    states = _open_states(args, workload, params, out_dir, trained)
    for state in states.values():  # what loading rolled forward after an interrupted run (shown even with --quiet)
        for note in getattr(state.store, "recovered", []):
            (progress.log if progress.enabled else lambda text: print(text, file=sys.stderr))(f"fedprivacy: recovered: {note}")
    universe = workload.universe
    server = ReferenceModel(*init_model(np.arange(universe, dtype=np.uint64), args.dim, seed=args.seed))
    largest = args.items if args.dataset == "synthetic" else 1000  # a public cap per client
    # The aggregation threshold must tolerate the scripted drops even for a handful of clients (a
    # semi-malicious threshold needs corrupt_fraction + 2 * dropout_fraction <= 0.9).
    tolerance = min(0.42, max(0.1, args.dropout) + 1.0 / len(workload.clients))
    settings = RoundSettings(universe=universe, dropout_fraction=tolerance, max_set_size=largest,
                             **ddp_options.round_fields(args))
    rng = np.random.default_rng(args.seed + 1)  # which synthetic clients drop: public simulation choice
    sim = _Simulation(args, progress, params, workload, states, server, settings, rng, out_dir, training)
    sim.round_offset = _last_round_index(states)
    sim.executor = executor_of(args)
    if sim.round_offset:
        progress.log(f"the clients' ledgers end at round {sim.round_offset}: this run's rounds are "
                     f"{sim.round_offset + 1}..{sim.round_offset + args.rounds} to them")
    return sim


def _evaluate_initial_model(sim: _Simulation) -> None:
    sim.progress.update(stage="evaluating the initial model")
    sim.rows.append({"round": 0, **_evaluate(sim.workload.clients, sim.server.table, sim.server.head)})
    sim.baselines = _start_baselines(sim.args, sim.workload, sim.workload.universe) if sim.args.compare else None
    if sim.baselines is not None:
        sim.rows[0].update(_baseline_aucs(sim.baselines, sim.workload))


def _scripted_drops(sim: _Simulation):
    """Which clients drop this round (half before the set union, half before the upload)."""
    from ..secagg import SecAggStep
    from ..submodel.engine import RoundDrops

    count = round(sim.args.dropout * len(sim.states))
    dropped = [int(p) for p in sim.rng.choice(sorted(sim.states), size=count, replace=False)]
    half = len(dropped) // 2
    return RoundDrops(psu={p: SecAggStep.INPUT for p in dropped[:half]}, upload={p: SecAggStep.INPUT for p in dropped[half:]})


def _round_randomness(seed: int, round_index: int):
    """Each client's protocol randomness for one round: a stream derived from (seed, round, client)."""
    from ..hazmat.prg import DeterministicRandomness

    return lambda party: DeterministicRandomness(f"fedprivacy simulate/seed {seed}/round {round_index}/client {party}")


def executor_of(args: argparse.Namespace) -> RayExecutor | None:
    """The clients' host: None (this process) or a Ray executor (``--executor ray [--ray-address A]``)."""
    if getattr(args, "executor", None) != "ray":
        return None
    from ..adapters.ray_executor import RayExecutor

    return RayExecutor(address=args.ray_address)


def _play_round(sim: _Simulation, round_index: int) -> None:
    from ..submodel.engine import run_round

    args, progress = sim.args, sim.progress
    stage = f"round {round_index}/{args.rounds}"
    progress.update(round_index - 1, stage=f"{stage}: set union, randomized response")
    drops = _scripted_drops(sim)
    # PSU drops do not train.
    sim.training.update({"stage": f"{stage}: training, upload", "done": 0, "expected": len(sim.states) - len(drops.psu)})
    try:
        outcome = run_round(sim.states, sim.server, sim.settings, sim.round_offset + round_index, drops,
                               random_source=_round_randomness(args.seed, sim.round_offset + round_index),
                               progress=lambda *_: interrupt.checkpoint(), executor=sim.executor,
                               union_estimate=sim.union_estimate, server_workers=sim.server_workers)
    except RoundAborted as exc:
        why = " (clients whose --epsilon-cap is spent refuse rounds)" if args.epsilon_cap is not None else ""
        kept = "" if sim.out_dir is None else f"; each client's ledger under {sim.out_dir} keeps the answers it gave"
        raise RoundAborted(exc.stage, f"{exc.detail}{why}, in {stage}{kept}") from None
    if getattr(args, "psu_first_bound", None) != "ceiling":  # the next round's first table: from this union
        sim.union_estimate = outcome.union_size
    progress.update(stage=f"{stage}: evaluating")
    row = _round_row(sim, round_index, outcome)
    row["sat_out"] = _sat_out(drops, outcome)
    sim.rows.append(row)
    reruns = f" ({outcome.psu_attempts} set-union attempts: the first table did not decode)" \
        if outcome.psu_attempts > 1 else ""
    progress.log(f"{stage}: auc {row['test_auc']:.4f}, loss {row['test_loss']:.4f}, union {row['union_size']}{reruns}, "
                 f"{row['participants']} of {len(sim.states)} clients in the sums, "
                 f"eps spent {row['epsilon_spent_max']:.3f}, {row['protocol_seconds']:.2f} s")
    _report_sat_out(stage, row["sat_out"], progress)
    if sim.baselines is not None:
        progress.update(stage=f"{stage}: baselines (plaintext, FedAvg + secagg)")
        _advance_baselines(sim.baselines, sim.workload, sim.workload.universe, sim.settings)
        row.update(_baseline_aucs(sim.baselines, sim.workload))


def _sat_out(drops, outcome) -> dict:
    """Who sat this round out, and why: the report's ``sat_out`` entry of a round."""
    return {
        "budget_refused": [int(p) for p in outcome.refused],
        "oversized": [int(p) for p in outcome.oversized],
        "aborted": [{"client": int(p), "error": str(exc)} for p, exc in sorted(outcome.client_errors.items())],
        "dropped_before_union": sorted(int(p) for p in drops.psu),
        "dropped_before_upload": sorted(int(p) for p in drops.upload),
    }


def _ids(ids: list[int]) -> str:
    shown = ", ".join(str(p) for p in ids[:20])
    return shown + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")


def _report_sat_out(stage: str, sat_out: dict, progress) -> None:
    """The clients that sat out on their own (budget, size, an error) are a warning, shown even with
    --quiet; the simulation's own scripted drops are a status line."""
    reasons = []
    if sat_out["budget_refused"]:
        reasons.append(f"budget refused: clients {_ids(sat_out['budget_refused'])} (their ledgers would pass the cap)")
    if sat_out["oversized"]:
        reasons.append(f"oversized: clients {_ids(sat_out['oversized'])} (more items than the public cap per client)")
    for entry in sat_out["aborted"]:
        reasons.append(f"aborted: client {entry['client']}: {entry['error']}")
    if reasons:
        progress.close()
        print(f"fedprivacy: {stage}: sat out: " + "; ".join(reasons), file=sys.stderr)
    scripted = len(sat_out["dropped_before_union"]) + len(sat_out["dropped_before_upload"])
    if scripted:
        progress.log(f"{stage}: dropped by the simulation (--dropout): {len(sat_out['dropped_before_union'])} before "
                     f"the set union, {len(sat_out['dropped_before_upload'])} before the upload")


def _round_row(sim: _Simulation, round_index: int, outcome) -> dict:
    from ..accounting import replay

    spent = np.array([replay(state.ledger).spent() for state in sim.states.values()])
    return {
        "round": round_index,
        "protocol_round": sim.round_offset + round_index,
        **_evaluate(sim.workload.clients, sim.server.table, sim.server.head),
        "union_size": outcome.union_size,
        "psu_first_bound": outcome.psu_first_bound,
        "psu_attempts": outcome.psu_attempts,
        "participants": outcome.participants,
        "randomized_set_mean": outcome.chosen_mean,
        "thin_rows": outcome.thin_rows,
        "upload_bytes_per_client": outcome.upload_bytes_median,
        "download_bytes_per_client": outcome.download_bytes_median,
        "protocol_seconds": outcome.psu_seconds + outcome.ldp_seconds + outcome.aggregation_seconds,
        "server_seconds": outcome.server_seconds,
        "epsilon_spent_max": outcome.epsilon_spent_max,
        "epsilon_spent_median": float(np.median(spent)),
        "epsilon_spent_min": float(spent.min()),
        "update_epsilon_max": max(replay(state.ledger).update_epsilon() for state in sim.states.values()),
    }


def _build_report(sim: _Simulation) -> dict:
    args, params = sim.args, sim.params
    report = {
        "mode": "secure-submodel",
        "dataset": args.dataset,
        "clients": len(sim.workload.clients),
        "items_per_client": args.items if args.dataset == "synthetic" else None,
        "universe": sim.workload.universe,
        "dim": args.dim,
        "seed": args.seed,
        "parameters": params.as_strings(),
        "epsilon_1": params.epsilon_1,
        "epsilon_inf": params.epsilon_inf,
        "index_sets_protected": params.epsilon_inf != float("inf"),
        "epsilon_cap": args.epsilon_cap,
        "rounds": sim.rows,
        "final_test_auc": sim.rows[-1]["test_auc"],
        **ddp_options.report_fields(args, sim.settings.ddp),
    }
    if sim.baselines is not None:
        report["comparison"] = _compare_table(report, sim.rows, sim.baselines)
    return report


def _write_outputs(sim: _Simulation, report: dict) -> tuple[list[str], str | None]:
    """report.json and the plots under ``--out`` (the ledgers and memos are written as the rounds go)."""
    out_dir, args = sim.out_dir, sim.args
    if out_dir is None:
        return [], None
    interrupt.note(f"the rounds finished and every ledger and memo under {out_dir} is kept; report.json may be "
                   "missing: run the same command again to redo the run (the ledgers continue)")
    sim.progress.update(args.rounds, stage="writing the report" + ("" if args.no_plots else " and plots"))
    _write_atomically(out_dir / "report.json", dumps(report, indent=1) + "\n")
    written = ["report", "per-client ledgers/memos"]
    if args.no_plots:
        return written, None
    from .plots import PlotsUnavailable, write_plots

    try:
        written += [path.name for path in write_plots(report, out_dir)]
    except PlotsUnavailable as exc:
        return written, f"fedprivacy: no auc.png or epsilon.png: {exc}"
    return written, None


def _write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path``, then rename it over ``path`` (never a half file)."""
    import os

    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _print_report(args: argparse.Namespace, report: dict, rows: list[dict], baselines: dict | None) -> None:
    if args.json:
        print(dumps(report))
        return
    if baselines is not None:
        print("\ncomparison after the last round (bytes per client per round):")
        for method in report["comparison"]:
            print(f"  {method['method']:<40} AUC {method['test_auc']:.4f}  up {method['upload_bytes_per_client']:>12.0f}  "
                  f"down {method['download_bytes_per_client']:>12.0f}  {method['privacy']}")
        print()
    header = ["round", "test_auc", "test_loss", "union_size", "participants", "randomized_set_mean",
              "upload_bytes_per_client", "download_bytes_per_client", "protocol_seconds", "epsilon_spent_max"]
    titles = ["round", "test AUC", "test loss", "union", "in sums", "mean |S''|", "up B/client", "down B/client",
              "protocol s", "eps spent"]
    print("  ".join(f"{h:>13}" for h in titles))
    for row in rows:
        print("  ".join(f"{row[h]:>13.4g}" if isinstance(row.get(h), float) else f"{row.get(h, ''):>13}" for h in header))
