"""The round's settings: public numbers the server picks and every client learns in ``RoundStart``."""

from __future__ import annotations

from dataclasses import dataclass

from ..ddp.params import DDPSettings
from ..errors import InvalidParameters
from ..hazmat.field import Modulus
from ..secagg.params import Adversary
from .messages import PublicSettings

__all__ = ["RoundSettings"]


@dataclass(frozen=True)
class RoundSettings:
    universe: int  # row ids are in [0, universe); the dense parameters travel as rows above it
    clip: float = 1.0  # per-parameter clip of row and dense deltas before quantization
    max_samples: int = 10_000  # public bound on a client's examples (row counts and dense weight)
    max_set_size: int = 1_000  # public cap on a client's index set: sizes the PSU table (n x cap)
    min_choosers: int = 2  # rows chosen by fewer clients are left out of every plan
    dropout_fraction: float = 0.1  # the secure sums' (k, t) tolerate this fraction of drops ...
    corrupt_fraction: float = 0.05  # ... and this fraction of clients colluding with the server
    modulus: Modulus = Modulus.U64  # of the rows' secure sum
    max_psu_attempts: int = 3  # PSU reruns (fresh hash keys) when the union does not decode
    adversary: Adversary = Adversary.SEMI_MALICIOUS  # the secure sums' thresholds (clients refuse weaker ones)
    ddp: DDPSettings | None = None  # distributed DP for the updates (None: secure aggregation only)
    # Above this many parties the rows' secure sum is a sparse SecAgg+ graph whose degree keeps a row
    # with row_survivor_fraction x n honest surviving choosers connected (spec: "Sparse rows").
    sparse_rows_above: int = 1000
    row_survivor_fraction: float = 0.05

    def __post_init__(self) -> None:
        if not isinstance(self.min_choosers, int) or self.min_choosers < 1:
            raise InvalidParameters("min_choosers must be a positive integer")
        if not isinstance(self.sparse_rows_above, int) or isinstance(self.sparse_rows_above, bool) or self.sparse_rows_above < 2:
            raise InvalidParameters("sparse_rows_above must be an integer >= 2")
        if not (isinstance(self.row_survivor_fraction, (int, float)) and 0 < self.row_survivor_fraction <= 1):
            raise InvalidParameters("row_survivor_fraction must be in (0, 1]")
        try:
            object.__setattr__(self, "adversary", Adversary(self.adversary))
        except ValueError:
            raise InvalidParameters(f"unknown adversary {self.adversary!r}") from None
        self.public()  # universe, caps, clip, modulus and attempts are validated there

    def public(self) -> PublicSettings:
        return PublicSettings(self.universe, self.max_set_size, self.clip, self.max_samples, self.modulus,
                              self.min_choosers, self.max_psu_attempts, self.ddp)

    def psu_bound(self, parties: int) -> int:
        """The PSU table's union bound: the most ids n clients can hold (public numbers only)."""
        return min(parties * self.max_set_size, self.universe)
