"""Seeded randomness a test can keep inside a pickled client between Flower messages."""

from __future__ import annotations

from fedprivacy.hazmat.prg import DeterministicRandomness

__all__ = ["ResumableRandomness"]


class ResumableRandomness:
    """:class:`~fedprivacy.hazmat.prg.DeterministicRandomness` that survives pickling (it resumes at the
    same position), so a seeded client can be kept in ``context.state`` between messages. Tests only:
    with a known seed, every key and coin of the client is known."""

    def __init__(self, seed: bytes | str) -> None:
        self._seed = seed
        self._position = 0
        self._stream = DeterministicRandomness(seed)

    def __call__(self, size: int) -> bytes:
        self._position += size
        return self._stream(size)

    def __getstate__(self) -> dict[str, object]:
        return {"seed": self._seed, "position": self._position}

    def __setstate__(self, state: dict[str, object]) -> None:
        self._seed = state["seed"]  # type: ignore[assignment]
        self._position = int(state["position"])  # type: ignore[call-overload]
        self._stream = DeterministicRandomness(self._seed)
        self._stream(self._position)
