"""The paper's randomized Bloom filter, for comparison and interoperability.

Each client sets its ids' ``hashes`` bits in a Bloom filter of ``bits`` cells and replaces every set
cell by a fresh uniform element of F_p \\ {0} (a cell set by several of its ids gets one value); with
``partitions`` > 0 it also sends a randomized indicator of the id partitions it touches
(partition = id // partition_size). After secure summation mod p a cell is non-zero iff some client
set it, except when the values cancel (probability about 1/p per cell held by two or more clients).

Decoding needs candidates: a caller-given candidate set, or every id of the partitions with a
non-zero indicator, or (neither) the whole universe. Members are the candidates whose cells are all
non-zero: Bloom false positives add ids (rate ``false_positive_rate`` per non-member candidate);
cost is linear in the number of candidates -- the reason the masked IBLT is the default.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ..encoding import domain_tag
from ..errors import InvalidParameters
from ..hazmat.kex import hkdf
from ..hazmat.prf import prf_u64
from ..hazmat.prg import RandomSource, system_random_bytes
from .iblt import nonzero_weights, validate_ids

__all__ = ["BloomParameters", "encode_bloom", "decode_bloom"]


@dataclass(frozen=True)
class BloomParameters:
    universe: int
    union_bound: int
    session_id: bytes
    false_positive_rate: float = 1e-6
    partitions: int = 0
    bits: int = field(init=False)
    hashes: int = field(init=False)
    key: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.universe, int) or not 1 <= self.universe < (1 << 61) - 1:
            raise InvalidParameters("universe must be in [1, 2^61 - 1)")
        if not isinstance(self.union_bound, int) or self.union_bound < 1:
            raise InvalidParameters("union_bound must be a positive integer")
        if not 0 < self.false_positive_rate < 1:
            raise InvalidParameters("false_positive_rate must be in (0, 1)")
        if not isinstance(self.partitions, int) or not 0 <= self.partitions <= self.universe:
            raise InvalidParameters("partitions must be in [0, universe]")
        bits = math.ceil(-self.union_bound * math.log(self.false_positive_rate) / math.log(2) ** 2)
        object.__setattr__(self, "bits", bits)
        object.__setattr__(self, "hashes", max(1, round(bits / self.union_bound * math.log(2))))
        object.__setattr__(self, "key", hkdf(self.session_id, b"", domain_tag("psu", "bloom-positions"), 16))

    @property
    def partition_size(self) -> int:
        return -(-self.universe // self.partitions) if self.partitions else self.universe

    @property
    def vector_length(self) -> int:
        return self.bits + self.partitions

    def positions(self, ids: np.ndarray) -> np.ndarray:
        bits = np.uint64(self.bits)
        return np.stack([(prf_u64(self.key, ids, j) % bits).astype(np.int64) for j in range(self.hashes)])


def _randomize_cells(vector: np.ndarray, cells: np.ndarray, random_bytes: RandomSource) -> None:
    cells = np.unique(cells)
    vector[cells] = nonzero_weights(cells.shape[0], random_bytes)


def encode_bloom(params: BloomParameters, ids: object, *, random_bytes: RandomSource = system_random_bytes) -> np.ndarray:
    distinct = validate_ids(ids, params.universe)
    vector = np.zeros(params.vector_length, dtype=np.uint64)
    if distinct.size:
        _randomize_cells(vector, params.positions(distinct).ravel(), random_bytes)
        if params.partitions:
            touched = (distinct // np.uint64(params.partition_size)).astype(np.int64) + params.bits
            _randomize_cells(vector, touched, random_bytes)
    return vector


def decode_bloom(
    params: BloomParameters, summed: np.ndarray, candidates: object | None = None, chunk: int = 1 << 22
) -> np.ndarray:
    """The candidates whose cells are all non-zero (see the module docstring for the candidate set)."""
    summed = np.asarray(summed, dtype=np.uint64)
    if summed.shape != (params.vector_length,):
        raise InvalidParameters(f"a summed filter has {params.vector_length} words")
    occupied = summed[: params.bits] != 0
    if candidates is not None:
        ranges: Iterable[np.ndarray] = [validate_ids(candidates, params.universe)]
    elif params.partitions:
        live = np.flatnonzero(summed[params.bits :])
        size = params.partition_size
        ranges = (np.arange(p * size, min((p + 1) * size, params.universe), dtype=np.uint64) for p in live)
    else:
        ranges = (
            np.arange(start, min(start + chunk, params.universe), dtype=np.uint64)
            for start in range(0, params.universe, chunk)
        )
    members = []
    for block in ranges:
        for start in range(0, block.shape[0], chunk):
            ids = block[start : start + chunk]
            keep = np.ones(ids.shape[0], dtype=bool)
            for j in range(params.hashes):  # early exit: test the survivors only
                idx = np.flatnonzero(keep)
                if idx.size == 0:
                    break
                positions = (prf_u64(params.key, ids[idx], j) % np.uint64(params.bits)).astype(np.int64)
                keep[idx[~occupied[positions]]] = False
            members.append(ids[keep])
    return np.concatenate(members) if members else np.zeros(0, dtype=np.uint64)
