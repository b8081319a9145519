"""The server's unmasking as a sum of independent terms, computed here or by local worker processes.

At the close of the unmasking stage the server takes out of the sum of the masked inputs
(``protocols/secagg/spec.md`` §8; per row, §12) the self mask of every survivor, keyed from its rebuilt
seed, and for every party of U2 that sent no input the pair masks its surviving mask peers added,
keyed from its rebuilt mask key agreed with each peer's public key. These terms are independent and
their sum mod the modulus does not depend on the order in which they are added, so the work is cut
into a few chunks (:func:`plan_chunks`, balanced by keystream bytes and key agreements; a dropout's
agreements go in the same chunk as its masks), each chunk sums its terms (:func:`unmask_chunk`: into
one partial vector of ``dim`` words; per row, each dropout's pair masks over its own rows, a few
hundred rows, while the caller sums the survivors' self masks -- little keystream -- over the union),
and the partials are added (:func:`remove_masks`). Residues are canonical (mod p reduced to
[0, p)), so the result is bit for bit the serial one, whatever the split.

Who runs the chunks is the caller's choice (:class:`UnmaskingWorkers`): the server never creates a
process or a thread. Without workers (the default) the whole job runs as one chunk in the calling
thread, straight into the sum.

What leaves the server's process when it has workers: **secrets**. A chunk carries the survivors'
self-mask keys and the dropouts' rebuilt private mask keys, with which the masks of those parties
are computed. The workers must therefore be processes of the server's own machine, started and
owned by the server (a local ``concurrent.futures.ProcessPoolExecutor``), never a remote or shared
executor (a Ray cluster, another host's pool): whoever runs a chunk can strip those masks. Threads
would keep the keys in the process but buy nothing here: the AES and X25519 calls hold the GIL.

Failures: a worker that raises, dies or returns something malformed ends in
:class:`~fedprivacy.errors.WorkerFailed` (a :class:`~fedprivacy.errors.RoundAborted`), and no partial
is added to the sum; a :class:`~fedprivacy.errors.FedPrivacyError` raised by the work itself (an
unusable public key) propagates as it would serially.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import FedPrivacyError, InvalidParameters, WorkerFailed
from ..hazmat.field import Modulus, add_inplace, dtype_of, word_bytes
from ..hazmat.kex import KeyAgreement
from ..hazmat.prg import MaskExpander
from .masking import pair_mask_key
from .params import SecAggConfig
from .rows import row_mask_sum, row_pair_masks

__all__ = ["DropoutMasks", "UnmaskChunk", "UnmaskingWorkers", "plan_chunks", "remove_masks", "unmask_chunk"]

# Balancing weights, in keystream bytes: one X25519 agreement and its HKDF cost about as much as
# expanding and adding this much keystream; a self mask over a few rows costs mostly its numpy calls.
_AGREEMENT_BYTES = 1 << 18
_CALL_BYTES = 1 << 14


@dataclass(frozen=True, slots=True)
class DropoutMasks:
    """A dropped party's pair masks to take out: its rebuilt private mask key, the surviving peers
    that masked with it (increasing) and their mask public keys. Per row also its rows (ids), their
    positions in the union, and per peer the positions among its rows of the rows both chose:
    ``shared[offsets[i]:offsets[i + 1]]`` for ``peers[i]``."""

    owner: int
    private_key: bytes
    peers: tuple[int, ...]
    peer_keys: tuple[bytes, ...]
    rows: np.ndarray | None = None
    positions: np.ndarray | None = None
    offsets: np.ndarray | None = None
    shared: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class UnmaskChunk:
    """One worker's share of the unmasking. Over a plain vector of ``config.dim`` words (``width`` 0):
    self masks (their keys) and dropouts, summed into one partial vector. Per row (``width`` > 0):
    dropouts only, each summed over its own rows (the survivors' self masks cost little keystream
    and are summed by the caller meanwhile)."""

    config: SecAggConfig
    self_keys: tuple[bytes, ...]
    dropouts: tuple[DropoutMasks, ...]
    width: int = 0


@dataclass(frozen=True)
class UnmaskingWorkers:
    """Worker processes for the server's unmasking. ``map(function, chunks)`` has the builtin
    ``map``'s contract (an iterable of results, in order; ``executor.map`` of a local
    ``concurrent.futures.ProcessPoolExecutor``); ``workers`` is how many chunks it runs at once, and
    the job is cut into ``chunks_per_worker`` x ``workers`` chunks at most. The chunks carry secrets
    (module docstring): only processes of the server's own machine may run them."""

    map: Callable[[Callable[[UnmaskChunk], Any], Iterable[UnmaskChunk]], Iterable[Any]]
    workers: int
    chunks_per_worker: int = 2

    def __post_init__(self) -> None:
        if not callable(self.map):
            raise InvalidParameters("UnmaskingWorkers.map must be callable (e.g. a process pool's map)")
        for name in ("workers", "chunks_per_worker"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1024:
                raise InvalidParameters(f"UnmaskingWorkers.{name} must be an integer in [1, 1024], got {value!r}")

    @classmethod
    def from_executor(cls, executor: object, workers: int, chunks_per_worker: int = 2) -> UnmaskingWorkers:
        """Workers from a ``concurrent.futures.Executor`` (anything with ``map``) of ``workers`` processes."""
        run = getattr(executor, "map", None)
        if run is None:
            raise InvalidParameters("an executor for the unmasking needs a map method")
        return cls(run, workers, chunks_per_worker)


def _pair_keys(config: SecAggConfig, dropout: DropoutMasks) -> list[bytes]:
    agreement = KeyAgreement(dropout.private_key)
    return [pair_mask_key(config, agreement.agree(public), dropout.owner, peer)
            for peer, public in zip(dropout.peers, dropout.peer_keys)]


def unmask_chunk(chunk: UnmaskChunk, target: np.ndarray | None = None) -> np.ndarray | list[np.ndarray]:
    """The masks of ``chunk``. Plain vector: taken out of ``target`` (a fresh zero vector if None) and
    returned -- target - sum of self masks - sum of sigma(peer, owner) pair masks, mod the modulus.
    Per row: one block per dropout, in order, of what its peers' pair masks added over its rows
    (:func:`~fedprivacy.secagg.rows.row_pair_masks`)."""
    config = chunk.config
    if not chunk.width:
        out = np.zeros(config.dim, dtype=dtype_of(config.modulus)) if target is None else target
        masks = [(key, True) for key in chunk.self_keys]
        for dropout in chunk.dropouts:  # ``peer`` added +mask if peer > owner and -mask otherwise
            masks += [(key, peer > dropout.owner) for peer, key in zip(dropout.peers, _pair_keys(config, dropout))]
        MaskExpander(config.modulus).apply_many(out, masks)
        return out
    blocks = []
    for dropout in chunk.dropouts:
        assert dropout.rows is not None and dropout.offsets is not None and dropout.shared is not None
        bounds, shared = dropout.offsets.tolist(), dropout.shared
        row_masks = [(key, shared[bounds[at] : bounds[at + 1]], peer > dropout.owner)
                     for at, (peer, key) in enumerate(zip(dropout.peers, _pair_keys(config, dropout)))]
        blocks.append(row_pair_masks(dropout.rows, chunk.width, config.modulus, row_masks))
    return blocks


def _row_bytes(width: int, modulus: Modulus) -> int:
    return -(-width * word_bytes(modulus) // 16) * 16


def _costs(config: SecAggConfig, selves: int, dropouts: Sequence[DropoutMasks], width: int) -> list[int]:
    """Each term's estimated work in keystream bytes (agreements and numpy calls weighed in): the
    ``selves`` self masks first (plain vector only), then the dropouts."""
    if not width:
        vector = config.dim * word_bytes(config.modulus)
        return [vector] * selves + [len(d.peers) * (vector + _AGREEMENT_BYTES) for d in dropouts]
    row = _row_bytes(width, config.modulus)
    return [(0 if d.shared is None else d.shared.shape[0]) * row + len(d.peers) * (_AGREEMENT_BYTES + _CALL_BYTES)
            for d in dropouts]


def plan_chunks(costs: Sequence[int], count: int) -> list[list[int]]:
    """The indices of ``costs`` split into at most ``count`` non-empty groups of about equal total
    (largest first, each into the lightest group), each group increasing. Deterministic."""
    count = max(1, min(count, len(costs)))
    loads = [(0, group) for group in range(count)]
    groups: list[list[int]] = [[] for _ in range(count)]
    for index in sorted(range(len(costs)), key=lambda at: (-costs[at], at)):
        load, group = heapq.heappop(loads)
        groups[group].append(index)
        heapq.heappush(loads, (load + costs[index], group))
    return [sorted(group) for group in groups if group]


def remove_masks(config: SecAggConfig, target: np.ndarray, self_keys: Sequence[bytes],
                 dropouts: Iterable[DropoutMasks], *, self_positions: Sequence[np.ndarray] | None = None,
                 union: np.ndarray | None = None, width: int = 0, workers: UnmaskingWorkers | None = None) -> None:
    """target -= every self mask and every dropout's pair masks (mod the modulus), in place; per row
    (``union`` given, with each survivor's ``self_positions`` in it) ``target`` is the union's blocks
    of ``width`` words, flat.

    Without ``workers``: all here. With them: the dropouts (and over a plain vector the self masks)
    in a few chunks through ``workers.map``, per row the self masks summed here meanwhile; every
    result is checked and summed before ``target`` is touched, so a failure (raised as
    :class:`~fedprivacy.errors.WorkerFailed`) leaves it as it was."""
    per_row = union is not None
    if per_row and (self_positions is None or len(self_positions) != len(self_keys) or not width):
        raise InvalidParameters("per-row unmasking needs a width and each survivor's positions in the union")
    selves = 0 if per_row else len(self_keys)  # per row, self masks stay here
    if workers is None:
        # Per row, each dropout's masks are built and summed in turn, never all at once.
        chunks = [] if per_row else [UnmaskChunk(config, tuple(self_keys), tuple(dropouts), 0)]
    else:
        dropouts = list(dropouts)
        chunks = []
        for group in plan_chunks(_costs(config, selves, dropouts, width if per_row else 0),
                                 workers.workers * workers.chunks_per_worker):
            chunks.append(UnmaskChunk(config, tuple(self_keys[at] for at in group if at < selves),
                                      tuple(dropouts[at - selves] for at in group if at >= selves), width if per_row else 0))
    if not per_row:
        if workers is None:
            unmask_chunk(chunks[0], target)
            return
        total = np.zeros(config.dim, dtype=dtype_of(config.modulus))
        for _, partial in _results(workers, chunks):
            add_inplace(total, partial, config.modulus)
        add_inplace(target, total, config.modulus)
        return
    assert self_positions is not None and union is not None
    if workers is None:
        pair_blocks: Iterable[tuple[np.ndarray, np.ndarray]] = (
            (dropout.positions, unmask_chunk(UnmaskChunk(config, (), (dropout,), width))[0])
            for dropout in dropouts if dropout.positions is not None)
    else:
        running = _results(workers, chunks)  # the workers start now; the self masks are summed while they run
        pair_blocks = ((dropout.positions, block) for chunk, found in running
                       for dropout, block in zip(chunk.dropouts, found) if dropout.positions is not None)
    total_rows = row_mask_sum(union, width, config.modulus, list(zip(self_keys, self_positions)), pair_blocks)
    add_inplace(target.reshape(-1, width), total_rows[:, :width], config.modulus)


def _expected(chunk: UnmaskChunk) -> list[tuple[int, ...]]:
    """The shapes of a chunk's result: one vector, or one block per dropout."""
    config = chunk.config
    if not chunk.width:
        return [(config.dim,)]
    row = _row_bytes(chunk.width, config.modulus) // word_bytes(config.modulus)
    return [(0 if d.rows is None else int(d.rows.shape[0]), row) for d in chunk.dropouts]


def _results(workers: UnmaskingWorkers, chunks: list[UnmaskChunk]) -> Iterator[tuple[UnmaskChunk, Any]]:
    """(chunk, its checked result) for every chunk, through ``workers.map``, called now (a process
    pool's map submits every chunk at once; the results are read as they are iterated). Anything
    but a :class:`~fedprivacy.errors.FedPrivacyError` of the work itself becomes :class:`WorkerFailed`."""
    try:
        results = iter(workers.map(unmask_chunk, chunks))
    except Exception as exc:
        raise WorkerFailed("unmasking", f"the unmasking workers failed ({type(exc).__name__}: {exc})") from exc
    return _checked(results, chunks)


def _checked(results: Iterator[Any], chunks: list[UnmaskChunk]) -> Iterator[tuple[UnmaskChunk, Any]]:
    received = 0
    try:
        for chunk in chunks:
            found = next(results, _MISSING)
            if found is _MISSING:
                break
            arrays = [found] if not chunk.width else found
            dtype = dtype_of(chunk.config.modulus)
            if not isinstance(arrays, list) or [getattr(a, "shape", None) for a in arrays] != _expected(chunk) or any(
                    not isinstance(a, np.ndarray) or a.dtype != dtype for a in arrays):
                raise WorkerFailed("unmasking", "a worker returned something other than its chunk's partial sums")
            received += 1
            yield chunk, found
    except FedPrivacyError:
        raise  # raised by the work itself (as it would be serially), or by the checks above
    except Exception as exc:  # a worker died, could not be reached, or failed on its own
        raise WorkerFailed("unmasking", f"the unmasking workers failed ({type(exc).__name__}: {exc})") from exc
    if received != len(chunks):
        raise WorkerFailed("unmasking", f"the workers returned {received} results for {len(chunks)} chunks")


_MISSING = object()
