"""The masked invertible Bloom lookup table over F_p (p = 2^61 - 1): encode, and peel.

Encoding (client): for each distinct id x of its set, a fresh weight r uniform in F_p \\ {0} is added
to each of x's cells as (r, r x[, r h(x)]). Summed over clients by secure aggregation mod p, the cells
of an id x hold W_x (1, x[, h(x)]) with W_x the sum of its holders' weights.

Peeling (server): a cell (C, S[, T]) with C != 0 is *pure* if x = S / C is an id of the universe, one of
x's cells is this cell, [and T = C h(x)]; then (C, C x[, C h(x)]) is removed from all of x's cells.
Peeling repeats on the touched cells until none is pure; success iff every cell is zero. Inverses are
batched with a product tree (one modular exponentiation per round).

Hashing: positions pos_j(x) = j * (cells/k) + (AES_K1(x || j) mod cells/k) and checksum h(x) = AES_K2(x)
masked to 61 bits, keys derived per session and attempt (:class:`PSUParameters`); one AES-ECB call
(:func:`fedprivacy.hazmat.prf.prf_u64`) hashes a whole batch of ids. A reference encoder over any prime (pure Python) serves the proofs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import InvalidParameters
from ..hazmat.field import P61, add_p61, mul_p61, reduce_p61_inplace
from ..hazmat.prf import prf_u64
from ..hazmat.prg import RandomSource, system_random_bytes
from .params import PSUParameters

__all__ = [
    "hash_ids",
    "validate_ids",
    "encode_set",
    "encode_reference",
    "nonzero_weights",
    "peel",
    "PeelResult",
    "batch_inverse",
]

_P = np.uint64(P61)


def hash_ids(params: PSUParameters, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions of shape (k, n), checksums in [0, p)) for uint64 ids."""
    sub = np.uint64(params.sub_table)
    positions = np.empty((params.hash_count, ids.shape[0]), dtype=np.int64)
    for j in range(params.hash_count):
        positions[j] = (prf_u64(params.position_key, ids, j) % sub).astype(np.int64) + j * params.sub_table
    checksums = prf_u64(params.checksum_key, ids, 0) & _P
    checksums[checksums == _P] = 0
    return positions, checksums


def validate_ids(ids: object, universe: int) -> np.ndarray:
    """Distinct ids as sorted uint64; ``InvalidParameters`` for non-integers or ids outside the universe."""
    array = np.asarray(ids)
    if array.ndim != 1:
        raise InvalidParameters("ids must be a one-dimensional collection")
    if array.size == 0:
        return np.zeros(0, dtype=np.uint64)
    if array.dtype == object:
        values = array.tolist()
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise InvalidParameters("ids must be integers")
        if min(values) < 0 or max(values) >= universe:
            raise InvalidParameters(f"ids must lie in [0, {universe})")
        array = np.array(values, dtype=np.uint64)
    elif array.dtype.kind not in "ui":
        raise InvalidParameters(f"ids must be integers, got dtype {array.dtype}")
    elif array.dtype.kind == "i" and int(array.min()) < 0:
        raise InvalidParameters(f"ids must lie in [0, {universe})")
    array = np.unique(array.astype(np.uint64)) if array.shape[0] < 4096 else _sorted_unique(array.astype(np.uint64))
    if int(array[-1]) >= universe:
        raise InvalidParameters(f"ids must lie in [0, {universe})")
    return array


def _sorted_unique(array: np.ndarray) -> np.ndarray:
    array = np.sort(array)
    keep = np.empty(array.shape[0], dtype=bool)
    keep[0] = True
    np.not_equal(array[1:], array[:-1], out=keep[1:])
    return array[keep]


def nonzero_weights(count: int, random_bytes: RandomSource) -> np.ndarray:
    """``count`` exactly uniform elements of F_p \\ {0} (61-bit words, rejecting 0 and p)."""
    words = np.frombuffer(random_bytes(8 * count), dtype="<u8").astype(np.uint64) & _P
    bad = np.flatnonzero((words == 0) | (words == _P))
    while bad.size:
        fresh = np.frombuffer(random_bytes(8 * bad.size), dtype="<u8").astype(np.uint64) & _P
        words[bad] = fresh
        bad = bad[(fresh == 0) | (fresh == _P)]
    return words


def _scatter_add(table: np.ndarray, cells: np.ndarray, values: np.ndarray) -> None:
    """table[cells] += values (mod p), correct for repeated cells (values in [0, p))."""
    if cells.size == 0:
        return
    counts = np.bincount(cells, minlength=0)
    if counts.max() <= 7:
        np.add.at(table, cells, values)
        reduce_p61_inplace(table)
        return
    order = np.argsort(cells, kind="stable")
    cells, values = cells[order], values[order]
    starts = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]])
    sums = np.zeros(starts.shape[0], dtype=np.uint64)
    for offset in range(int(counts.max())):  # rare: at most ~log n rounds of 61-bit additions
        index = starts + offset
        valid = index < np.r_[starts[1:], cells.shape[0]]
        sums[valid] = add_p61(sums[valid], values[index[valid]])
    table[cells[starts]] = add_p61(table[cells[starts]], sums)


def encode_set(
    params: PSUParameters, ids: object, *, random_bytes: RandomSource = system_random_bytes
) -> np.ndarray:
    """A client's sketch: a vector of ``params.vector_length`` residues mod p (fields stacked)."""
    distinct = validate_ids(ids, params.universe)
    table = np.zeros(params.vector_length, dtype=np.uint64)
    if distinct.size == 0:
        return table
    positions, checksums = hash_ids(params, distinct)
    weights = nonzero_weights(distinct.shape[0], random_bytes)
    fields = [weights, mul_p61(weights, distinct)]
    if params.fields == 3:
        fields.append(mul_p61(weights, checksums))
    for f, values in enumerate(fields):
        segment = table[f * params.cells : (f + 1) * params.cells]
        _scatter_add(segment, positions.ravel(), np.tile(values, params.hash_count))
    return table


def encode_reference(
    params: PSUParameters, ids: Sequence[int], weights: Sequence[int], prime: int
) -> tuple[int, ...]:
    """The same sketch in pure Python over any prime, with the weights given (proofs and tests)."""
    distinct = sorted({int(i) for i in ids})
    if len(weights) != len(distinct):
        raise InvalidParameters("one weight per distinct id")
    positions, checksums = hash_ids(params, np.array(distinct, dtype=np.uint64))
    table = [0] * params.vector_length
    for column, (x, r) in enumerate(zip(distinct, weights)):
        values = [r, r * x, r * int(checksums[column])][: params.fields]
        for j in range(params.hash_count):
            cell = int(positions[j, column])
            for f, value in enumerate(values):
                table[f * params.cells + cell] = (table[f * params.cells + cell] + value) % prime
    return tuple(table)


def batch_inverse(values: np.ndarray) -> np.ndarray:
    """Elementwise inverses mod p of non-zero residues, by a product tree (one exponentiation)."""
    n = values.shape[0]
    if n == 0:
        return values.copy()
    levels = [values.astype(np.uint64)]
    while levels[-1].shape[0] > 1:
        current = levels[-1]
        if current.shape[0] % 2:
            current = np.append(current, np.uint64(1))
        levels.append(mul_p61(current[0::2], current[1::2]))
    inverse = np.array([pow(int(levels[-1][0]), P61 - 2, P61)], dtype=np.uint64)
    for level in reversed(levels[:-1]):
        padded = level if level.shape[0] % 2 == 0 else np.append(level, np.uint64(1))
        expanded = np.repeat(inverse, 2)
        swapped = padded.reshape(-1, 2)[:, ::-1].ravel()
        inverse = mul_p61(expanded, swapped)[: level.shape[0]]
    return inverse


class PeelResult:
    """``estimated_union``: the union size implied by the fraction of occupied cells (linear counting;
    infinite when every cell is occupied) -- a function of the union alone, used to size a rerun."""

    __slots__ = ("ids", "success", "rounds", "residual_cells", "estimated_union")

    def __init__(self, ids: np.ndarray, success: bool, rounds: int, residual_cells: int, estimated_union: float) -> None:
        self.ids = ids
        self.success = success
        self.rounds = rounds
        self.residual_cells = residual_cells
        self.estimated_union = estimated_union


def peel(params: PSUParameters, summed: np.ndarray) -> PeelResult:
    """Recover the ids from a summed sketch. ``success`` is False unless every cell ends at zero."""
    summed = np.asarray(summed, dtype=np.uint64)
    if summed.shape != (params.vector_length,):
        raise InvalidParameters(f"a summed sketch has {params.vector_length} words, got {summed.shape}")
    if summed.size and int(summed.max()) >= P61:
        raise InvalidParameters("a summed sketch holds residues mod p")
    cells = params.cells
    weight = summed[:cells].copy()
    idsum = summed[cells : 2 * cells].copy()
    checksum = summed[2 * cells :].copy() if params.fields == 3 else None
    found: list[np.ndarray] = []
    seen = np.zeros(0, dtype=np.uint64)  # ids peeled so far (sorted)
    candidates = np.flatnonzero(weight)
    occupied = candidates.shape[0] / cells
    sub = params.sub_table
    estimated = math.inf if occupied >= 1 else -sub * math.log1p(-occupied)
    rounds = 0
    duplicate_peel = False
    while candidates.size:
        rounds += 1
        c = weight[candidates]
        nonzero = c != 0
        candidates, c = candidates[nonzero], c[nonzero]
        if candidates.size == 0:
            break
        x = mul_p61(idsum[candidates], batch_inverse(c))
        ok = x < np.uint64(params.universe)
        candidates, c, x = candidates[ok], c[ok], x[ok]
        positions, sums = hash_ids(params, x)
        sub_index = candidates // params.sub_table
        ok = positions[sub_index, np.arange(candidates.shape[0])] == candidates
        if checksum is not None:
            ok &= checksum[candidates] == mul_p61(c, sums)
        x, c, positions, sums = x[ok], c[ok], positions[:, ok], sums[ok]
        if x.size == 0:
            break
        x, first = np.unique(x, return_index=True)  # an id pure in two cells at once is peeled once
        c, positions, sums = c[first], positions[:, first], sums[first]
        where = np.searchsorted(seen, x)
        if seen.size and bool(np.any(seen[np.minimum(where, seen.size - 1)] == x)):
            # An honest sum holds one multiple of (1, x) in each of x's cells; peeling x again means
            # a crafted or corrupted table: stop here (a decode failure), never loop.
            duplicate_peel = True
            break
        seen = np.insert(seen, where, x)
        found.append(x)
        touched = positions.ravel()
        minus_c = np.tile(_P - c, params.hash_count)
        _scatter_add(weight, touched, minus_c)
        _scatter_add(idsum, touched, np.tile(_P - mul_p61(c, x), params.hash_count))
        if checksum is not None:
            _scatter_add(checksum, touched, np.tile(_P - mul_p61(c, sums), params.hash_count))
        candidates = np.unique(touched)
    ids = np.sort(np.concatenate(found)) if found else np.zeros(0, dtype=np.uint64)
    residual = int(np.count_nonzero(weight) + np.count_nonzero(idsum))
    if checksum is not None:
        residual += int(np.count_nonzero(checksum))
    return PeelResult(ids, residual == 0 and not duplicate_peel, rounds, residual, estimated)
