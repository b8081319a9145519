"""``fedprivacy bench secagg``: one whole secure-aggregation round in process, timed per party.

The inputs are public test data (``numpy.random`` is fine here: nothing secret is drawn from it).
``limit_seconds`` is measured in the same run: the time to generate (k + 1) * D mask words with the
same AES-CTR keystream into a reused buffer and add each once -- the floor for one client's masking.

``adversary="malicious"`` runs the malicious-mode round (spec §14) and, interleaved with it in the
same process, the semi-malicious round with the same (k, t), inputs and dropouts, ``repeats`` times
each; it reports the extra time of malicious mode next to its floor -- signatures made x the time to
sign plus signatures checked x the time to verify, both measured in the same run -- and the ratios
of the whole runs, for the clients (median over parties) and for the server. That comparison is
timed in process CPU time (``time.process_time``, rounds and signatures alike), so other processes
on a shared machine do not enter the ratios; the wall-clock totals are reported beside it.
"""

from __future__ import annotations

import dataclasses
import gc
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np

from fedprivacy.hazmat.field import Modulus, dtype_of, modulus_value, word_bytes
from fedprivacy.hazmat.identity import Signer, Verifier
from fedprivacy.hazmat.prg import ctr_into
from fedprivacy.secagg import Adversary, DropoutSchedule, SecAggConfig, SecAggStep, make_identities, run_secagg_round
from fedprivacy.secagg.messages import KeyBroadcast, MessageType, decode_message

from .memory import peak_rss_mib
from .workers import parallel_capacity, server_workers, worker_memory

__all__ = ["SecAggBenchOptions", "run_secagg_bench", "masking_limit_seconds", "signature_seconds"]


@dataclass(frozen=True)
class SecAggBenchOptions:
    clients: int
    dim: int
    dropout: float
    drop_stage: SecAggStep = SecAggStep.UNMASK
    neighbours: int | None = None
    threshold: int | None = None
    full_graph: bool = False
    corrupt: float = 0.05
    modulus: Modulus = Modulus.U32
    seed: int = 0
    adversary: Adversary = Adversary.SEMI_MALICIOUS  # curious: the clients' policy is set to accept it
    repeats: int = 5  # malicious mode: rounds per mode, interleaved (medians reported)
    server_workers: int = 1  # processes for the server's unmasking (1: its own thread)


def masking_limit_seconds(words_per_mask: int, masks: int, modulus: Modulus, repeats: int = 7) -> float:
    """Median time to generate ``masks`` keystreams of ``words_per_mask`` words and add each once."""
    dtype = dtype_of(modulus)
    accumulator = np.zeros(words_per_mask, dtype=dtype)
    keystream = np.empty(words_per_mask, dtype=dtype)
    out = keystream.data.cast("B")
    zeros = bytes(words_per_mask * word_bytes(modulus))
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        for index in range(masks):
            key = index.to_bytes(16, "big")
            ctr_into(key, zeros, out)
            np.add(accumulator, keystream, out=accumulator)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def signature_seconds(samples: int = 300, clock=time.perf_counter) -> tuple[float, float]:
    """(sign, verify) seconds per Ed25519 operation on statements of the size the protocol signs
    (about 150 bytes), cycling over 32 keys as a round does; each the median of 5 batches of ``samples``."""
    signers = [Signer(bytes([i]) * 32) for i in range(1, 33)]
    verifiers = [Verifier(signer.verify_key) for signer in signers]
    statements = [bytes([i]) * 150 for i in range(len(signers))]
    signatures = [signer.sign(statement) for signer, statement in zip(signers, statements)]
    jobs = [(i % len(signers)) for i in range(samples)]
    sign, verify = [], []
    for _ in range(5):
        started = clock()
        for i in jobs:
            signers[i].sign(statements[i])
        sign.append((clock() - started) / samples)
        started = clock()
        for i in jobs:
            verifiers[i].verify(signatures[i], statements[i])
        verify.append((clock() - started) / samples)
    return statistics.median(sign), statistics.median(verify)


def _plain_sum(vectors: list[np.ndarray], modulus: Modulus) -> np.ndarray:
    """The reference sum, computed independently of the protocol's field code, one vector at a time."""
    if modulus is Modulus.P61:
        total = np.zeros(vectors[0].shape[0], dtype=object)
        for vector in vectors:
            total = (total + vector.astype(object)) % modulus_value(modulus)
        return total.astype(np.uint64)
    total = np.zeros(vectors[0].shape[0], dtype=np.uint64)
    for vector in vectors:
        total += vector  # exact below 2^64 for u32 words (n < 2^32); numpy wraps mod 2^64 for u64
    return total.astype(dtype_of(modulus))


def run_secagg_bench(options: SecAggBenchOptions, progress: bool = True) -> dict[str, object]:
    """One round (or the malicious comparison), with ``options.server_workers`` processes for the
    server's unmasking started before and closed after it (:mod:`fedprivacy_bench.workers`)."""
    with server_workers(options.server_workers) as workers:
        capacity = [parallel_capacity(workers)]
        if Adversary(options.adversary) is Adversary.MALICIOUS:
            result = _run_malicious_comparison(options, progress, workers)
        else:
            result = _run_one(options, progress, workers)
        capacity.append(parallel_capacity(workers))
    return {**result, "server_workers": options.server_workers, "parallel_capacity_before_after": capacity,
            **worker_memory(options.server_workers)}


def _config(options: SecAggBenchOptions, party_ids: list[int], adversary: Adversary | str) -> SecAggConfig:
    return SecAggConfig.create(party_ids, options.dim, options.modulus, corrupt_fraction=options.corrupt,
                               dropout_fraction=options.dropout, neighbours=options.neighbours,
                               threshold=options.threshold, full_graph=options.full_graph, adversary=adversary)


def _workload(options: SecAggBenchOptions, party_ids: list[int]) -> tuple[dict[int, np.ndarray], DropoutSchedule]:
    """The public test inputs and who drops, from ``options.seed``."""
    rng = np.random.default_rng(options.seed)  # public benchmark data only
    high = modulus_value(options.modulus)
    inputs = {
        p: rng.integers(0, min(high, 1 << 63), options.dim, dtype=np.uint64).astype(dtype_of(options.modulus))
        for p in party_ids
    }
    dropped = rng.choice(party_ids, size=round(options.dropout * options.clients), replace=False)
    return inputs, DropoutSchedule({int(p): options.drop_stage for p in dropped})


def _run_one(options: SecAggBenchOptions, progress: bool = True, workers=None) -> dict[str, object]:
    party_ids = list(range(1, options.clients + 1))
    config = _config(options, party_ids, options.adversary)
    inputs, schedule = _workload(options, party_ids)
    if progress:
        print(
            f"secagg bench: n={options.clients} D={options.dim} k={config.neighbours} t={config.threshold} "
            f"{len(schedule.drops)} dropping before {options.drop_stage.value}",
            file=sys.stderr,
        )
    policy = None
    if Adversary(options.adversary) is Adversary.CURIOUS:  # a client's default policy refuses curious thresholds
        from fedprivacy.policy import ClientPolicy

        policy = ClientPolicy(adversary=Adversary.CURIOUS, corrupt_fraction=options.corrupt)
    started = time.perf_counter()
    report = run_secagg_round(config, inputs, schedule, policy=policy, server_workers=workers)
    total = time.perf_counter() - started
    correct = False
    if report.result is not None:
        correct = bool(np.array_equal(report.result, _plain_sum([inputs[p] for p in report.input_ids], options.modulus)))
    survivors = [p for p in party_ids if p not in schedule.drops]
    limit = masking_limit_seconds(options.dim, config.neighbours + 1, options.modulus)
    masking = [report.client_masking_seconds[p] for p in survivors if p in report.client_masking_seconds]
    return {
        "correct": correct,
        "aborted": None if report.aborted is None else str(report.aborted),
        "clients": options.clients,
        "dim": options.dim,
        "dropout": options.dropout,
        "drop_stage": options.drop_stage.value,
        "modulus": options.modulus.name.lower(),
        "adversary": Adversary(options.adversary).value,
        "neighbours": config.neighbours,
        "threshold": config.threshold,
        "client_seconds_median": statistics.median(report.client_seconds[p] for p in survivors),
        "client_masking_seconds_median": statistics.median(masking) if masking else None,
        "server_seconds": report.server_seconds,
        "total_seconds": total,
        "upload_bytes_per_client": statistics.median(report.upload_bytes[p] for p in survivors),
        "limit_seconds": limit,
        "masking_over_limit": (statistics.median(masking) / limit) if masking else None,
        "peak_rss_mb": peak_rss_mib(),
    }


class _SignatureCounter:
    """Counts, from the delivered bytes, the signatures each client checks and the server checks."""

    def __init__(self) -> None:
        self.client_checks: dict[int, int] = {}
        self.server_checks = 0

    def __call__(self, sender: int, recipient: int, data: bytes) -> None:
        kind = data[6]
        if sender == 0 and kind in (MessageType.SIGNED_KEY_BROADCAST, MessageType.SIGNED_UNMASK_REQUEST):
            message = decode_message(data)
            count = len(message.peers) if isinstance(message, KeyBroadcast) else len(getattr(message, "signatures", None) or ())
            self.client_checks[recipient] = self.client_checks.get(recipient, 0) + count
        elif recipient == 0 and kind in (MessageType.SIGNED_ADVERTISE_KEYS, MessageType.CONSISTENCY_RESPONSE):
            self.server_checks += 1


def _run_malicious_comparison(options: SecAggBenchOptions, progress: bool, workers=None) -> dict[str, object]:
    party_ids = list(range(1, options.clients + 1))
    config = _config(options, party_ids, Adversary.MALICIOUS)
    inputs, schedule = _workload(options, party_ids)
    survivors = [p for p in party_ids if p not in schedule.drops]
    if progress:
        print(
            f"secagg bench (malicious vs semi-malicious, {options.repeats} rounds each): n={options.clients} "
            f"D={options.dim} k={config.neighbours} t={config.threshold} {len(schedule.drops)} dropping before "
            f"{options.drop_stage.value}",
            file=sys.stderr,
        )
    rounds = _interleaved_rounds(options, config, inputs, schedule, workers)
    return {
        "correct": rounds.correct,
        "aborted": None if rounds.runs[True][0].aborted is None else str(rounds.runs[True][0].aborted),
        "clients": options.clients,
        "dim": options.dim,
        "dropout": options.dropout,
        "drop_stage": options.drop_stage.value,
        "modulus": options.modulus.name.lower(),
        "adversary": "malicious",
        "baseline_adversary": "semi-malicious",
        "neighbours": config.neighbours,
        "threshold": config.threshold,
        "repeats": max(1, options.repeats),
        "clock": "process CPU time",
        **_malicious_costs(rounds, survivors),
        "peak_rss_mb": peak_rss_mib(),
    }


@dataclass
class _InterleavedRounds:
    """Both modes' round reports and wall times (key: malicious), the signatures counted in the first
    malicious round, and the (sign, verify) seconds timed before, between and after the rounds."""

    runs: dict[bool, list]
    wall: dict[bool, list[float]]
    counter: _SignatureCounter
    timings: list[tuple[float, float]]
    correct: bool


def _interleaved_rounds(options: SecAggBenchOptions, config: SecAggConfig, inputs: dict[int, np.ndarray],
                        schedule: DropoutSchedule, workers=None) -> _InterleavedRounds:
    """``options.repeats`` rounds of each mode on the same workload, alternating which mode goes first."""
    baseline = dataclasses.replace(config, malicious=False)  # same (k, t): the semi-malicious round
    identities, trust = make_identities(list(config.party_ids))
    rounds = _InterleavedRounds({True: [], False: []}, {True: [], False: []}, _SignatureCounter(), [], True)
    clock = time.process_time
    rounds.timings.append(signature_seconds(300, clock))  # sign / verify timed between the rounds, medians used
    for repeat in range(max(1, options.repeats)):
        for malicious in (False, True) if repeat % 2 == 0 else (True, False):
            gc.collect()
            gc.disable()  # as timeit does: a collection landing in one mode's round is noise
            started = time.perf_counter()
            report = run_secagg_round(
                config if malicious else baseline,
                inputs,
                schedule,
                identities=identities if malicious else None,
                trust=trust if malicious else None,
                observer=rounds.counter if malicious and repeat == 0 else None,
                clock=clock,
                server_workers=workers,
            )
            rounds.wall[malicious].append(time.perf_counter() - started)
            gc.enable()
            rounds.runs[malicious].append(report)
            rounds.correct = rounds.correct and report.result is not None and bool(
                np.array_equal(report.result, _plain_sum([inputs[p] for p in report.input_ids], options.modulus))
            )
            rounds.timings.append(signature_seconds(300, clock))
    return rounds


def _malicious_costs(rounds: _InterleavedRounds, survivors: list[int]) -> dict[str, object]:
    """Medians of both modes, their ratios, and the extra cost against the signatures' floor."""
    runs, counter = rounds.runs, rounds.counter
    sign_seconds = statistics.median(sign for sign, _ in rounds.timings)
    verify_seconds = statistics.median(verify for _, verify in rounds.timings)

    def client_median(reports, party):
        return statistics.median(r.client_seconds[party] for r in reports)

    client_mal = {p: client_median(runs[True], p) for p in survivors}
    client_semi = {p: client_median(runs[False], p) for p in survivors}
    server_mal = statistics.median(r.server_seconds for r in runs[True])
    server_semi = statistics.median(r.server_seconds for r in runs[False])
    client_floor = {p: 2 * sign_seconds + counter.client_checks.get(p, 0) * verify_seconds for p in survivors}
    client_extra = statistics.median(client_mal[p] - client_semi[p] for p in survivors)
    floor_median = statistics.median(client_floor.values())
    server_floor = counter.server_checks * verify_seconds
    upload_mal = statistics.median(runs[True][0].upload_bytes[p] for p in survivors)
    upload_semi = statistics.median(runs[False][0].upload_bytes[p] for p in survivors)
    return {
        "wall_seconds_median": statistics.median(rounds.wall[True]),
        "baseline_wall_seconds_median": statistics.median(rounds.wall[False]),
        "sign_seconds": sign_seconds,
        "verify_seconds": verify_seconds,
        "signatures_made_per_client": 2,
        "signatures_checked_per_client_median": statistics.median(counter.client_checks.get(p, 0) for p in survivors),
        "server_signatures_checked": counter.server_checks,
        "client_seconds_median": statistics.median(client_mal.values()),
        "baseline_client_seconds_median": statistics.median(client_semi.values()),
        "client_ratio": statistics.median(client_mal.values()) / statistics.median(client_semi.values()),
        "client_extra_seconds_median": client_extra,
        "client_extra_floor_seconds_median": floor_median,
        "client_extra_over_floor": client_extra / floor_median,
        "server_seconds": server_mal,
        "baseline_server_seconds": server_semi,
        "server_ratio": server_mal / server_semi,
        "server_extra_seconds": server_mal - server_semi,
        "server_extra_floor_seconds": server_floor,
        "server_extra_over_floor": (server_mal - server_semi) / server_floor if server_floor else None,
        "upload_bytes_per_client": upload_mal,
        "extra_upload_bytes_per_client": upload_mal - upload_semi,
    }
