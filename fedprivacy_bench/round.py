"""``fedprivacy bench round``: one secure submodel round in process, checked against plaintext.

``--adversary malicious`` times malicious-mode rounds against semi-malicious ones (see
:func:`run_round_bench`). ``--psu-first-bound`` sizes the measured round's first PSU table as a
server running many rounds would (``protocols/submodel/spec.md``, "First PSU table"): from the union
of a preceding round (``previous``: its union computed in plaintext, which is exactly what that
round's PSU outputs; ``--warm-up``: that round run for real first, the clients' memos then warm too),
or a given bound; the JSON says which bound was used and where it came from. ``correct`` recomputes, outside the protocol, the plaintext submodel round on the *same* randomized
sets (every surviving client's local update on S_i ∩ S''_i from the same starting model; training is
deterministic) and compares the per-row averages with what the secure round applied, within the
quantization error. The workload is the seeded synthetic one (public data).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from fedprivacy.ddp.params import DDPSettings
from fedprivacy.hazmat.prg import system_random_bytes
from fedprivacy.ldp import RRParameters
from fedprivacy.secagg import Adversary, SecAggStep, make_identities
from fedprivacy.secagg.graph import all_neighbourhoods
from fedprivacy.secagg.messages import AdvertiseKeys, ConsistencyResponse, KeyBroadcast, UnmaskRequest
from fedprivacy.submodel.client import DeviceState
from fedprivacy.submodel.demo import init_rows, local_update, synthetic_workload
from fedprivacy.submodel.engine import RoundDrops, run_round
from fedprivacy.submodel.messages import PhaseMessage, decode_submodel_message
from fedprivacy.submodel.reference import ReferenceModel, ReferenceTrainer
from fedprivacy.submodel.server import PSU_HEADROOM, first_psu_bound, rows_degree
from fedprivacy.submodel.settings import RoundSettings
from fedprivacy.submodel.workload import Workload

from .memory import current_rss_reader, peak_rss_bytes
from .secagg import signature_seconds
from .workers import parallel_capacity, server_workers as worker_pool, worker_memory

__all__ = ["run_round_bench"]


def run_round_bench(clients: int, items: int, universe: int, dim: int, dropout: float, params: RRParameters,
                    seed: int = 0, ddp: DDPSettings | None = None, executor=None,
                    adversary: Adversary = Adversary.SEMI_MALICIOUS, repeats: int = 3,
                    sparse_rows_above: int | None = None, psu_first_bound: int | str | None = None,
                    warm_up: bool = False, server_workers: int = 1, workload: Workload | None = None) -> dict[str, object]:
    """One round (``adversary`` semi-malicious), or -- ``adversary`` malicious -- ``repeats`` malicious-mode
    rounds (every client with an identity, the server with the trust store; spec §14 of
    ``protocols/secagg/spec.md``) interleaved with as many semi-malicious rounds on the same workload,
    timed in process CPU time; the medians and their ratios are reported. With ``ddp`` the clients clip
    and add exact noise (weights 0/1: max_samples 1); the plaintext comparison is then reported but not
    a correctness check (``correct`` is None). ``executor``: the engine's client host (default: this
    process). ``server_workers``: processes for the server's unmasking (:mod:`fedprivacy_bench.workers`;
    1: the server's own thread), started before and closed after the rounds; their memory is reported.
    ``workload``: the synthetic workload of these sizes and seed when the caller built it already (the
    command line does, to size its memory check from the union).

    ``psu_first_bound``: the measured round's first PSU table bound -- None or ``"ceiling"`` (n x items,
    capped by the universe), an integer, or ``"previous"``: ``PSU_HEADROOM`` x the union of a preceding
    round (the same clients, the next seeded dropout draw; its union computed in plaintext, or, with
    ``warm_up``, that round run first through the protocol, which leaves the memos warm). The
    measured round's drops are the same in every mode."""
    if Adversary(adversary) is Adversary.MALICIOUS and (psu_first_bound not in (None, "ceiling") or warm_up):
        raise ValueError("the malicious-mode comparison sizes the PSU table at the ceiling")
    with worker_pool(server_workers) as workers:
        capacity = [parallel_capacity(workers)]
        if Adversary(adversary) is Adversary.MALICIOUS:
            result = _malicious_comparison(clients, items, universe, dim, dropout, params, seed, repeats, ddp, executor,
                                           workers=workers, workload=workload)
        else:
            result = _one_round(clients, items, universe, dim, dropout, params, seed, ddp=ddp, executor=executor,
                                sparse_rows_above=sparse_rows_above, psu_first_bound=psu_first_bound,
                                warm_up=warm_up, workers=workers, workload=workload)
        capacity.append(parallel_capacity(workers))
    return {**result, "server_workers": server_workers, "parallel_capacity_before_after": capacity,
            **worker_memory(server_workers)}


def _scripted_drops(states, dropout: float, rng: np.random.Generator) -> RoundDrops:
    """Half the dropouts before the PSU's masked input, half before the rows' upload."""
    dropped = [int(p) for p in rng.choice(sorted(states), size=round(dropout * len(states)), replace=False)]
    half = len(dropped) // 2
    return RoundDrops(psu={p: SecAggStep.INPUT for p in dropped[:half]}, upload={p: SecAggStep.INPUT for p in dropped[half:]})


def plaintext_union_size(workload, drops: RoundDrops) -> int:
    """The union a round's PSU outputs under ``drops`` (no other dropout, no oversized client): the
    real sets of every client whose sketch is summed, i.e. all but those gone before the masked input."""
    gone = set(drops.psu)
    sets = [np.unique(c.train_items) for c in workload.clients if c.client_id not in gone]
    return int(np.unique(np.concatenate(sets)).shape[0]) if sets else 0


def _one_round(clients: int, items: int, universe: int, dim: int, dropout: float, params: RRParameters,
               seed: int = 0, adversary: Adversary = Adversary.SEMI_MALICIOUS, identities=None, trust=None,
               clock=time.perf_counter, observer=None, ddp: DDPSettings | None = None,
               executor=None, sparse_rows_above: int | None = None, psu_first_bound: int | str | None = None,
               warm_up: bool = False, workers=None, workload: Workload | None = None) -> dict[str, object]:
    if warm_up and psu_first_bound != "previous":
        raise ValueError("a warm-up round sizes the first PSU table only with psu_first_bound='previous'")
    memory = _MemoryProbe()
    if workload is None:
        workload = synthetic_workload(clients=clients, universe=universe, items_per_user=items, seed=seed)
    elif workload.universe != universe or len(workload.clients) != clients:
        raise ValueError("the workload given is not one of these sizes")
    memory.mark("workload")
    states = {
        c.client_id: DeviceState.new(ReferenceTrainer(c), params,
                                     identity=None if identities is None else identities[c.client_id], trust=trust)
        for c in workload.clients
    }
    # the demo model, float32 as embedding tables are (its row downloads go as 4-byte floats), packed:
    # no per-row object, and the starting rows are this array, which the server copies before its update
    before, head = init_rows(universe, dim, seed=seed, dtype=np.float32)
    memory.mark("clients and model")
    drops = _scripted_drops(states, dropout, np.random.default_rng(seed + 1))
    tolerance = min(0.42, max(0.1, dropout) + 1.0 / clients)  # tolerate the scripted drops at small n (semi-malicious: 0.05 + 2 x 0.42 <= 0.9)
    extra: dict[str, Any] = {} if ddp is None else {"ddp": ddp, "max_samples": 1}
    if sparse_rows_above is not None:  # the rows' graph: full up to this many parties, sparse above
        extra["sparse_rows_above"] = sparse_rows_above
    settings = RoundSettings(universe=universe, dropout_fraction=tolerance, max_set_size=items, adversary=adversary,
                             **extra)
    server = ReferenceModel.from_arrays(np.arange(universe, dtype=np.uint64), before, head)
    first: dict[str, Any] = {"psu_ceiling": settings.psu_bound(clients), "warm_up": None}
    round_index, bound = 0, None
    if psu_first_bound in (None, "ceiling"):
        first["psu_first_bound_source"] = "ceiling"
    elif psu_first_bound == "previous":
        previous = _scripted_drops(states, dropout, np.random.default_rng(seed + 2))  # the preceding round's drops
        if warm_up:  # run it: its union (and the clients' warm memos) as a server running many rounds has them
            warm = run_round(states, server, settings, 0, previous, trust=trust, clock=clock, executor=executor,
                             server_workers=workers)
            estimate, round_index = warm.union_size, 1
            first["warm_up"] = {"union_size": warm.union_size, "psu_first_bound": warm.psu_first_bound,
                                "psu_attempts": warm.psu_attempts, "server_seconds": warm.server_seconds,
                                "client_seconds_median": warm.client_seconds_median}
            before, head = server.rows(np.arange(universe, dtype=np.uint64)), server.head  # the measured round's start
            first["psu_first_bound_source"] = f"{PSU_HEADROOM} x the warm-up round's union"
            memory.mark("warm-up round")
        else:
            estimate = plaintext_union_size(workload, previous)
            first["psu_first_bound_source"] = f"{PSU_HEADROOM} x a preceding round's union (computed in plaintext)"
        first["union_estimate"] = estimate
        bound = first_psu_bound(settings, clients, estimate)
    else:
        bound = int(psu_first_bound)
        first["psu_first_bound_source"] = "given"
    started = time.perf_counter()
    outcome = run_round(states, server, settings, round_index, drops, observer=observer, trust=trust, clock=clock,
                           executor=executor, progress=memory.progress, psu_first_bound=bound,
                           server_workers=workers)
    new_head = server.head
    total = time.perf_counter() - started
    memory.mark("round")
    del states  # the clients' ledgers and memos: nothing below reads them

    worst = max_difference_from_plaintext(workload, before, head, server, new_head, outcome, settings, universe)
    memory.mark("plaintext check")
    floor = server_floor(outcome, dim + 1, -(-server.dense_size // dim))
    memory.mark("server floor")
    sizes = [rows.shape[0] for rows in outcome.chosen.values()]
    planned = outcome.planned_rows.shape[0]
    return {
        "correct": worst < 1e-6 if ddp is None else None,
        "ddp": None if ddp is None else {"l2_clip": ddp.l2_clip, "noise_multiplier": ddp.noise_multiplier,
                                         "sensitivity": ddp.sensitivity},
        "max_abs_difference_vs_plaintext": worst,
        "clients": clients,
        "items": items,
        "universe": universe,
        "dim": dim,
        "dropout": dropout,
        "parameters": params.as_strings(),
        "union_size": outcome.union_size,
        "psu_first_bound": outcome.psu_first_bound,
        **first,
        "psu_attempts": outcome.psu_attempts,
        "psu_bounds": list(outcome.result.psu_bounds) if outcome.result is not None else [],
        "psu_table_words": outcome.result.psu_config.dim if outcome.result is not None and outcome.result.psu_config else 0,
        "participants": outcome.participants,
        "randomized_set_mean": outcome.chosen_mean,
        "randomized_set_max": max(sizes, default=0),
        "planned_rows": planned,
        # choosers of a planned row, on average (the per-row aggregation's graph size)
        "choosers_per_row_mean": _choosers_per_planned_row(outcome),
        "thin_rows": outcome.thin_rows,
        "rows_neighbours": rows_degree(settings, clients) or clients - 1,  # the rows' graph degree (n - 1: full)
        "exchanges_per_round": outcome.exchanges,
        "psu_seconds": outcome.psu_seconds,
        "ldp_seconds": outcome.ldp_seconds,
        "aggregation_seconds": outcome.aggregation_seconds,
        "training_seconds": outcome.training_seconds,
        "protocol_seconds": outcome.psu_seconds + outcome.ldp_seconds + outcome.aggregation_seconds,
        "server_seconds": outcome.server_seconds,
        "server_floor_seconds": floor["seconds"],
        "server_over_floor": outcome.server_seconds / floor["seconds"] if floor["seconds"] else 0.0,
        "server_floor": floor,
        # where the server's seconds went: per step of the round, per work (receive, close, send, start)
        "server_seconds_by_step": outcome.server_steps,
        "client_seconds_median": outcome.client_seconds_median,
        "upload_bytes_per_client": outcome.upload_bytes_median,
        "download_bytes_per_client": outcome.download_bytes_median,
        "total_seconds": total,
        "executor": "inprocess" if executor is None else type(executor).__name__,
        "peak_rss_bytes": peak_rss_bytes(),
        "memory_by_stage": [{"stage": stage, **sizes} for stage, sizes in memory.stages.items()],  # in order
    }


class _MemoryProbe:
    """Where the bench's memory goes: per step of the bench and per stage of the round (sampled as the
    clients answer, every 32nd answer and the last), the largest resident set seen and the process's
    peak so far (a peak reached inside a server step shows in the next sample's ``peak_bytes``)."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, int]] = {}
        self._statm = current_rss_reader()

    def _sample(self, label: str) -> None:
        entry = self.stages.setdefault(label, {"rss_max_bytes": 0, "peak_bytes": 0})
        rss = self._statm() if self._statm is not None else 0
        entry["rss_max_bytes"] = max(entry["rss_max_bytes"], rss)
        entry["peak_bytes"] = peak_rss_bytes()

    def mark(self, label: str) -> None:
        self._sample(label)

    def progress(self, stage: str, done: int, total: int) -> None:
        if done == total or done % 32 == 0:
            self._sample("round: " + stage)



def _median_seconds(function, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def primitive_speeds() -> dict[str, float]:
    """This machine's speeds, now: AES-128 keystream bytes per second (64 MiB at a time), one X25519
    agreement, one HKDF-SHA256 derivation of a 16-byte mask key, one Shamir reconstruction per secret (t = 500, batches of 200 secrets) and uint64
    adds per second (the uploads summed)."""
    from fedprivacy.hazmat import shamir
    from fedprivacy.hazmat.kex import KeyAgreement, hkdf, public_key
    from fedprivacy.hazmat.prf import OUTPUT_SLACK, aes_blocks_into
    from fedprivacy.hazmat.prg import system_random_bytes
    from fedprivacy.secagg.messages import SECRET_LIMBS

    block = np.zeros(1 << 26, dtype=np.uint8)
    out = np.empty(block.shape[0] + OUTPUT_SLACK, dtype=np.uint8)
    aes = _median_seconds(lambda: aes_blocks_into(bytes(16), block, out), 3)
    agreement = KeyAgreement(system_random_bytes(32))
    peer = public_key(system_random_bytes(32))
    agree = _median_seconds(lambda: [agreement.agree(peer) for _ in range(200)]) / 200
    secret, salt, info = bytes(32), bytes(32), bytes(64)  # a pair mask key's sizes (salt: the config digest)
    derive = _median_seconds(lambda: [hkdf(secret, salt, info, 16) for _ in range(200)]) / 200
    t, secrets = 500, 200
    shares = np.ones((t, secrets * SECRET_LIMBS), dtype=np.uint64)
    xs = tuple(range(1, t + 1))
    shamir.reconstruct(shares, xs)  # Lagrange weights cached per holder set, as in a round
    reconstruct = _median_seconds(lambda: shamir.reconstruct(shares, xs), 3) / secrets / t
    words = np.ones(1 << 24, dtype=np.uint64)
    adds = _median_seconds(lambda: np.add(words, words, out=words), 3)
    return {"aes_bytes_per_second": block.shape[0] / aes, "x25519_seconds": agree, "hkdf_seconds": derive,
            "shamir_seconds_per_secret_and_share": reconstruct, "add_words_per_second": words.shape[0] / adds}


def server_floor(outcome, block_words: int, dense_rows: int) -> dict[str, Any]:
    """The server's unavoidable work in this round, in seconds at :func:`primitive_speeds`: the keystream
    it must expand (the PSU's self masks of the survivors and pair masks of its dropouts with their
    surviving neighbours over the whole table; the rows' self masks over each survivor's rows and, for each dropped party of the plan --
    every party of the rows' sum is in it with the dense pseudo-rows, a PSU dropout too -- the pair
    masks of its surviving co-choosers over the rows they share), the key agreements for the
    dropouts' pair masks (in the rows' sum with every survivor: all share the dense rows), the mask
    keys derived from them and from the rebuilt seeds (one HKDF each), the Shamir
    reconstructions (t shares per secret), the uploads summed, and the table peel (timed in the
    round)."""
    result = outcome.result
    speeds = primitive_speeds()
    psu, rows = result.psu_config, result.rows_config
    row_bytes = -(-block_words * 8 // 16) * 16  # whole AES blocks per row
    psu_alive = len(result.psu_contributors)
    psu_dropped = sorted(result.psu_sharers - result.psu_contributors)
    psu_neighbours = all_neighbourhoods(psu)  # each dropout's surviving neighbours added a pair mask with it
    psu_pairs = sum(len(psu_neighbours[d] & result.psu_contributors) for d in psu_dropped)
    planned = outcome.planned_rows
    alive = sorted(result.contributors)
    in_plan = {p: ids[np.isin(ids, planned, assume_unique=True)] for p, ids in outcome.chosen.items()
               if p in result.row_sharers}
    alive_choosers = np.zeros(planned.shape[0], dtype=np.int64)
    for p in alive:
        alive_choosers[np.searchsorted(planned, in_plan[p])] += 1
    # Every party of the rows' sum is in the plan with the dense pseudo-rows (a non-reporter, e.g. a
    # PSU dropout, with those alone): each dropped one's pair masks with every survivor come out.
    empty = np.zeros(0, dtype=np.uint64)
    dropped_in_plan = sorted(result.row_sharers - result.contributors) if dense_rows else \
        [p for p in in_plan if p not in result.contributors]
    row_self = sum(in_plan[p].shape[0] + dense_rows for p in alive)
    if rows.full_graph:
        row_pairs = sum(int(alive_choosers[np.searchsorted(planned, in_plan.get(d, empty))].sum())
                        + dense_rows * len(alive) for d in dropped_in_plan)
        row_agreements = sum(len(alive) if dense_rows else sum(1 for p in alive if np.intersect1d(in_plan[p], in_plan[d]).size)
                             for d in dropped_in_plan)
    else:  # sparse rows: only a dropout's surviving neighbours masked with it, over the rows both kept
        neighbours, alive_set = all_neighbourhoods(rows), set(alive)
        row_pairs = row_agreements = 0
        for d in dropped_in_plan:
            peers = sorted(neighbours[d] & alive_set)
            row_agreements += len(peers)
            row_pairs += sum(np.intersect1d(in_plan.get(d, empty), in_plan.get(v, empty), assume_unique=True).shape[0]
                             for v in peers)
            row_pairs += dense_rows * len(peers)
    keystream = psu.dim * 8 * (psu_alive + psu_pairs) + row_bytes * (row_self + row_pairs)
    agreements = psu_pairs + row_agreements
    derivations = agreements + psu_alive + len(alive)  # a mask key per pair mask and per self mask
    secrets_psu = psu_alive + len(psu_dropped)
    secrets_rows = len(alive) + len(result.row_sharers - result.contributors)
    shamir_work = psu.threshold * secrets_psu + rows.threshold * secrets_rows
    adds = psu.dim * psu_alive + block_words * row_self
    parts = {
        "keystream": keystream / speeds["aes_bytes_per_second"],
        "key_agreements": agreements * speeds["x25519_seconds"],
        "key_derivations": derivations * speeds["hkdf_seconds"],
        "shamir": shamir_work * speeds["shamir_seconds_per_secret_and_share"],
        "uploads_summed": adds / speeds["add_words_per_second"],
        "table_peel": result.psu_decode_seconds,
    }
    return {"seconds": sum(parts.values()), "parts_seconds": parts, "keystream_bytes": keystream,
            "key_agreements": agreements, "secrets_rebuilt": secrets_psu + secrets_rows, **speeds}


def _malicious_comparison(clients: int, items: int, universe: int, dim: int, dropout: float, params: RRParameters,
                          seed: int, repeats: int, ddp: DDPSettings | None = None,
                          executor=None, workers=None, workload: Workload | None = None) -> dict[str, object]:
    identities, trust = make_identities(range(1, clients + 1))  # synthetic client ids are 1..clients
    runs: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    counter = _SignatureCounter()
    timings = [signature_seconds(300, time.process_time)]
    for repeat in range(max(1, repeats)):
        for malicious in (False, True) if repeat % 2 == 0 else (True, False):
            gc.collect()
            runs[malicious].append(_one_round(
                clients, items, universe, dim, dropout, params, seed,
                Adversary.MALICIOUS if malicious else Adversary.SEMI_MALICIOUS,
                identities if malicious else None, trust if malicious else None, clock=time.process_time,
                observer=counter if malicious and repeat == 0 else None, ddp=ddp, executor=executor,
                workers=workers, workload=workload,
            ))
            timings.append(signature_seconds(300, time.process_time))
    sign = statistics.median(t for t, _ in timings)
    verify = statistics.median(v for _, v in timings)
    result: dict[str, Any] = dict(runs[True][0])
    result["correct"] = None if ddp is not None else all(run["correct"] for mode in runs.values() for run in mode)
    result["max_abs_difference_vs_plaintext"] = max(run["max_abs_difference_vs_plaintext"] for mode in runs.values() for run in mode)
    result.update({"adversary": "malicious", "baseline_adversary": "semi-malicious", "repeats": max(1, repeats),
                   "clock": "process CPU time"})
    for key in ("psu_seconds", "ldp_seconds", "aggregation_seconds", "protocol_seconds", "server_seconds",
                "client_seconds_median", "total_seconds"):
        mine = statistics.median(run[key] for run in runs[True])
        base = statistics.median(run[key] for run in runs[False])
        result[key], result["baseline_" + key] = mine, base
    for key in ("protocol_seconds", "server_seconds", "client_seconds_median"):
        result[key.replace("_seconds", "").replace("_median", "") + "_ratio"] = result[key] / result["baseline_" + key] if result["baseline_" + key] else None
    # The floor: every signature made and checked in the round (both secure sums), timed in this run.
    floor = sum(counter.signed.get(p, 0) * sign + counter.checked.get(p, 0) * verify for p in counter.signed)
    floor += counter.server_checked * verify
    parties = sorted(counter.signed)
    result.update({
        "sign_seconds": sign,
        "verify_seconds": verify,
        "signatures_made_per_client_median": statistics.median(counter.signed[p] for p in parties) if parties else 0,
        "signatures_checked_per_client_median": statistics.median(counter.checked.get(p, 0) for p in parties) if parties else 0,
        "server_signatures_checked": counter.server_checked,
        "protocol_extra_seconds": result["protocol_seconds"] - result["baseline_protocol_seconds"],
        "protocol_extra_floor_seconds": floor,
        "protocol_extra_over_floor": (result["protocol_seconds"] - result["baseline_protocol_seconds"]) / floor if floor else None,
        "baseline_plus_floor_ratio": (result["baseline_protocol_seconds"] + floor) / result["baseline_protocol_seconds"],
    })
    result["baseline_upload_bytes_per_client"] = runs[False][0]["upload_bytes_per_client"]
    result["extra_upload_bytes_per_client"] = result["upload_bytes_per_client"] - result["baseline_upload_bytes_per_client"]
    result["peak_rss_bytes"] = peak_rss_bytes()
    return result


class _SignatureCounter:
    """Counts, from the delivered bytes of both secure sums, the signatures each client makes and checks
    and those the server checks (called outside the timed parts of the round)."""

    def __init__(self) -> None:
        self.signed: dict[int, int] = {}
        self.checked: dict[int, int] = {}
        self.server_checked = 0
        self._seen: set[bytes] = set()  # a joint advertisement's one signature travels in both sums' messages

    def __call__(self, session: str, sender: int, recipient: int, data: bytes) -> None:
        if session not in ("psu", "rows"):
            return
        message = decode_submodel_message(data)
        assert isinstance(message, PhaseMessage)  # the secure sums' messages travel as phase messages
        payload = message.payload
        if sender == 0:
            if isinstance(payload, KeyBroadcast) and payload.signed:
                self.checked[recipient] = self.checked.get(recipient, 0) + len(payload.peers)
            elif isinstance(payload, UnmaskRequest) and payload.signatures is not None:
                self.checked[recipient] = self.checked.get(recipient, 0) + len(payload.signatures)
        elif isinstance(payload, ConsistencyResponse) or (isinstance(payload, AdvertiseKeys) and payload.signature):
            if payload.signature in self._seen:  # made and checked once (protocols/secagg/spec.md §14.8)
                return
            self._seen.add(payload.signature)
            self.signed[sender] = self.signed.get(sender, 0) + 1
            self.server_checked += 1



def _choosers_per_planned_row(outcome) -> float:
    planned = outcome.planned_rows
    if planned.shape[0] == 0:
        return 0.0
    total = sum(int(np.isin(rows, planned, assume_unique=True).sum()) for rows in outcome.chosen.values())
    return total / planned.shape[0]




def max_difference_from_plaintext(workload, before, head, table, new_head, outcome, settings, universe) -> float:
    """Largest difference between the secure round's model and plaintext FedSubAvg on the same
    randomized sets, recomputed independently of the round's plan: the rows chosen by at least
    min_choosers clients, each surviving client's update on the rows it holds among them, counts
    capped at the public bound, clipped deltas; rows outside the plan must not move. A client uploads
    zeros for a row with fewer than min_choosers choosers among the parties whose shares were routed
    in the rows' sum (the peers it really masks with, itself included).

    ``before``: the starting rows by row id (an array, or a dict read a block at a time, never stacked
    whole); ``table``: the rows after the round (a dict, or a server whose ``rows(ids)`` reads them). The
    expected rows and head are rounded to the model's precision (``table``'s rows' dtype), as the server
    rounds its own update. Nothing is kept per client beyond its turn: the chooser counts are one
    counter per row id."""
    dim = head.weights.shape[0]
    by_id = {c.client_id: c for c in workload.clients}
    chooser_counts = np.zeros(universe, dtype=np.int64)
    for ids in outcome.chosen.values():  # strictly increasing ids: one increment per row and chooser
        chooser_counts[ids.astype(np.intp)] += 1
    planned = np.flatnonzero(chooser_counts >= settings.min_choosers).astype(np.uint64)
    del chooser_counts
    width = dim + 1
    sums = np.zeros((planned.shape[0], width))
    counts = np.zeros(planned.shape[0])
    dense, samples = np.zeros(width), 0.0
    in_plan = np.zeros(universe, dtype=bool)
    in_plan[planned] = True
    sharers = outcome.result.row_sharers if outcome.result is not None else frozenset(outcome.contributors)
    masked_by = np.zeros(planned.shape[0], dtype=np.int64)  # choosers of each planned row among the sharers
    for party in sharers:
        if party in outcome.chosen:
            mine = outcome.chosen[party]
            masked_by[np.searchsorted(planned, mine[in_plan[mine]])] += 1
    for party in outcome.contributors:
        data = by_id[party]
        mine = outcome.chosen[party][in_plan[outcome.chosen[party]]]
        held = np.intersect1d(mine, data.train_items)
        update = local_update(data, {int(r): np.asarray(before[int(r)], dtype=np.float64) for r in held}, head)
        capped = np.minimum(update.row_counts, settings.max_samples)
        where = np.searchsorted(planned, update.rows)
        kept = masked_by[where] >= settings.min_choosers
        where, capped = where[kept], capped[kept]
        sums[where] += capped[:, None] * np.clip(update.row_deltas[kept], -settings.clip, settings.clip)
        counts[where] += capped
        weight = min(update.samples, settings.max_samples)
        dense += weight * np.clip(update.dense_delta, -settings.clip, settings.clip)
        samples += weight
    # Every row, a block at a time: planned rows must have moved by their average, others not at all.
    average = np.divide(sums, counts[:, None], out=np.zeros_like(sums), where=counts[:, None] > 0)
    rows_at = planned.astype(np.int64)
    if isinstance(table, Mapping):
        def after(ids: np.ndarray) -> np.ndarray:
            return np.array([table[r] for r in ids.tolist()])
    else:
        after = table.rows
    worst, precision = 0.0, np.dtype(np.float64)
    for start in range(0, universe, 65_536):
        stop = min(universe, start + 65_536)
        expected = np.array([before[r] for r in range(start, stop)] if isinstance(before, dict) else before[start:stop],
                            dtype=np.float64)
        low, high = np.searchsorted(rows_at, [start, stop])
        moved = rows_at[low:high] - start
        got = after(np.arange(start, stop, dtype=np.uint64))
        precision = got.dtype
        expected[moved] = (expected[moved] + average[low:high]).astype(precision)  # rounded as the server rounds
        worst = max(worst, float(np.max(np.abs(got.astype(np.float64) - expected))))
    expected_dense = (head.flat() + (dense / samples if samples else 0.0)).astype(precision).astype(np.float64)
    worst = max(worst, float(np.max(np.abs(new_head.flat() - expected_dense))))
    return worst


def first_bound_reruns(clients: int, items: int, universe: int, dropout: float = 0.1, seed: int = 0,
                       rounds: int = 200, population: int | None = None, peels: int = 20,
                       headroom: float = PSU_HEADROOM) -> dict[str, Any]:
    """How often an honest server whose first PSU table is ``headroom`` x the last round's union reruns,
    on the bench's seeded workload (``protocols/submodel/spec.md``, "First PSU table").

    ``rounds`` rounds in plaintext: each takes ``clients`` clients (all of them, or a fresh uniform
    sample from ``population`` clients), drops ``round(dropout x clients)`` of them as the bench does
    (half before the PSU's masked input) and takes the union of the others' real sets -- exactly what
    that round's PSU outputs. Round r + 1's first table is sized from round r's union. The largest
    round-to-round growth is reported, and for the ``peels`` round pairs of largest growth the union
    is encoded into that first table under a fresh session and peeled (the summed sketch's peel
    depends on the union and the keys alone, up to ids vanishing with probability <= 1/(p-1),
    ``protocols/psu/spec.md`` §4): a failure there is a rerun."""
    from fedprivacy.psu.iblt import encode_set, peel
    from fedprivacy.psu.params import PSUParameters

    workload = synthetic_workload(clients=population or clients, universe=universe, items_per_user=items, seed=seed)
    sets = [np.unique(c.train_items).astype(np.int64) for c in workload.clients]
    settings = RoundSettings(universe=universe, max_set_size=items)
    rng = np.random.default_rng(seed + 3)  # public simulation choices
    unions: list[np.ndarray] = []
    for _ in range(rounds + 1):
        cohort = rng.choice(len(sets), size=clients, replace=False) if population else np.arange(clients)
        dropped = rng.choice(cohort, size=round(dropout * clients), replace=False)
        gone = set(dropped[: len(dropped) // 2].tolist())
        held = np.zeros(universe, dtype=bool)
        for index in cohort.tolist():
            if index not in gone:
                held[sets[index]] = True
        unions.append(np.flatnonzero(held).astype(np.uint64))
    sizes = np.array([u.shape[0] for u in unions], dtype=np.int64)
    growth = sizes[1:] / sizes[:-1]
    bounds = [first_psu_bound(settings, clients, int(s), headroom) for s in sizes[:-1]]
    worst = np.argsort(growth)[::-1][:peels]
    failures = 0
    for index in worst.tolist():
        params = PSUParameters(universe, bounds[index], system_random_bytes(32))
        union = unions[index + 1]
        failures += not peel(params, encode_set(params, union)).success
    return {"clients": clients, "population": population, "items": items, "universe": universe, "dropout": dropout,
            "rounds": rounds, "headroom": headroom, "union_mean": float(sizes.mean()), "union_min": int(sizes.min()),
            "union_max": int(sizes.max()), "growth_max": float(growth.max()), "growth_p99": float(np.quantile(growth, 0.99)),
            "first_bound_over_union_min": float(min(b / s for b, s in zip(bounds, sizes[1:]))),
            "ceiling": settings.psu_bound(clients), "peeled": len(worst), "peel_failures": failures}
