"""Double randomized response over a questionnaire (the union U), sans-I/O.

``randomize`` answers "do you hold index j?" for every j in U: new indices get a permanent answer
(p1 if held, p2 if not) recorded in the memo; every index then gets a fresh instantaneous answer from
its permanent one (p3 / p4). It returns the randomized set S'', the next memo and the privacy event
to record -- and changes nothing else: the caller must persist the memo and append the event to the
client's ledger *before* S'' leaves the device.

Threat model and what leaks: ``protocols/ldp/spec.md`` §1 (per-index epsilons in §3). Membership
changes after an index's first answer are not reflected ("freeze" semantics): no extra loss, stale
utility.

Randomness layout (for vectors and the enumeration proofs): one 64-bit word per permanent coin, for
the new indices in increasing id order, then one word per instantaneous coin, for every index of U
in increasing id order (see :mod:`fedprivacy.hazmat.sampling`).

Cost: O(|U| + |memo|) vectorised numpy work; no Python loop over indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameters
from ..hazmat.prg import RandomSource, system_random_bytes
from ..hazmat.sampling import bernoulli, common_denominator
from .memo import PermanentMemo
from .params import RRParameters

__all__ = ["RandomizedSet", "randomize", "as_id_array"]

_MAX_ID = (1 << 64) - 1


@dataclass(frozen=True, eq=False)
class RandomizedSet:
    chosen_ids: np.ndarray  # S'', sorted
    memo: PermanentMemo  # the memo to persist
    union_size: int
    new_indices: int  # indices answered permanently for the first time (new privacy events)
    max_reports: int  # the most reports any index has drawn from its memo, this one included


def as_id_array(ids: object, name: str) -> np.ndarray:
    """A sorted, duplicate-free uint64 id array; ``InvalidParameters`` for anything else."""
    array = np.asarray(ids)
    if array.ndim != 1:
        raise InvalidParameters(f"{name} must be a one-dimensional collection of ids")
    if array.size == 0:
        return np.zeros(0, dtype=np.uint64)
    if array.dtype.kind not in "ui":
        if array.dtype == object and all(isinstance(v, int) and not isinstance(v, bool) for v in array.tolist()):
            if min(array.tolist()) < 0 or max(array.tolist()) > _MAX_ID:
                raise InvalidParameters(f"{name} must be integers in [0, 2^64)")
            array = np.array(array.tolist(), dtype=np.uint64)
        else:
            raise InvalidParameters(f"{name} must hold integer ids, got dtype {array.dtype}")
    if array.dtype.kind == "i" and int(array.min()) < 0:
        raise InvalidParameters(f"{name} must be integers in [0, 2^64)")
    array = array.astype(np.uint64, copy=False)
    if array.shape[0] > 1 and not bool(np.all(array[1:] > array[:-1])):
        array = np.sort(array)
        keep = np.empty(array.shape[0], dtype=bool)
        keep[0] = True
        np.not_equal(array[1:], array[:-1], out=keep[1:])
        array = array[keep]
    return array


def randomize(
    params: RRParameters,
    memo: PermanentMemo,
    union: object,
    real_ids: object,
    *,
    random_bytes: RandomSource = system_random_bytes,
) -> RandomizedSet:
    """One round of double randomized response over ``union`` (see the module docstring)."""
    memo.check_owner(memo.client_id, params)
    union_ids = as_id_array(union, "union")
    real = as_id_array(real_ids, "real_ids")
    size = union_ids.shape[0]
    denominator = common_denominator([params.p1, params.p2, params.p3, params.p4])
    scale = {name: int(getattr(params, name) * denominator) for name in ("p1", "p2", "p3", "p4")}

    position, known = _locate_in_memo(memo, union_ids)
    new_ids = union_ids[~known]

    # Permanent coins for the new ids: p1 if held, p2 if not.
    thresholds = np.where(_held(new_ids, real), np.uint64(scale["p1"]), np.uint64(scale["p2"]))
    new_answers = bernoulli(thresholds, denominator, random_bytes)

    # Permanent answer of every union id, then the instantaneous coins: p3 if in S', p4 if not.
    permanent = np.empty(size, dtype=bool)
    if len(memo):
        permanent[known] = memo.answers[position[known]]
    permanent[~known] = new_answers
    instantaneous = bernoulli(
        np.where(permanent, np.uint64(scale["p3"]), np.uint64(scale["p4"])), denominator, random_bytes
    )

    # Next memo: merge the new ids in, count one more report for every union id.
    ids, answers, reports, in_union = _merged_memo(memo, position, known, new_ids, new_answers)
    if size and int(reports[in_union].max()) == np.iinfo(np.uint32).max:
        raise InvalidParameters("report counter overflow")
    reports[in_union] += 1
    next_memo = PermanentMemo(memo.client_id, params, memo.epoch, ids, answers, reports, memo.ledger_seq, memo.ledger_head)
    return RandomizedSet(
        chosen_ids=union_ids[instantaneous],
        memo=next_memo,
        union_size=size,
        new_indices=int(new_ids.shape[0]),
        max_reports=next_memo.max_reports,
    )


def _locate_in_memo(memo: PermanentMemo, union_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which union ids already have a permanent answer (``known``) and where each union id is, or
    would be inserted, in the memo's sorted ids (``position``): one merge-search, reused after."""
    size = union_ids.shape[0]
    if len(memo) == size and bool(np.array_equal(memo.ids, union_ids)):
        return np.arange(size, dtype=np.intp), np.ones(size, dtype=bool)  # the same questionnaire as last time
    if len(memo):
        position = np.searchsorted(memo.ids, union_ids)
        return position, memo.ids[np.minimum(position, len(memo) - 1)] == union_ids
    return np.zeros(size, dtype=np.intp), np.zeros(size, dtype=bool)


def _held(new_ids: np.ndarray, real: np.ndarray) -> np.ndarray:
    """For each new id (sorted), whether the client really holds it."""
    held = np.zeros(new_ids.shape[0], dtype=bool)
    if real.size and new_ids.size:
        where = np.searchsorted(new_ids, real)
        inside = where < new_ids.shape[0]
        hits = where[inside][new_ids[where[inside]] == real[inside]]
        held[hits] = True
    return held


def _merged_memo(
    memo: PermanentMemo, position: np.ndarray, known: np.ndarray, new_ids: np.ndarray, new_answers: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The next memo's ids, answers and report counts (not yet incremented), with the new ids merged
    in, and each union id's index in them: its position in the old memo plus the new ids inserted
    before it."""
    new_count = new_ids.shape[0]
    if new_count == 0:
        return memo.ids, memo.answers, memo.reports.copy(), position
    if len(memo) == 0:
        return new_ids, new_answers, np.zeros(new_count, dtype=np.uint32), np.arange(known.shape[0], dtype=np.intp)
    total = len(memo) + new_count
    new_slots = position[~known] + np.arange(new_count)
    old_slots = np.ones(total, dtype=bool)
    old_slots[new_slots] = False
    ids = np.empty(total, dtype=np.uint64)
    answers = np.empty(total, dtype=bool)
    reports = np.zeros(total, dtype=np.uint32)
    ids[new_slots], answers[new_slots] = new_ids, new_answers
    ids[old_slots], answers[old_slots], reports[old_slots] = memo.ids, memo.answers, memo.reports
    return ids, answers, reports, position + np.cumsum(~known) - (~known)
