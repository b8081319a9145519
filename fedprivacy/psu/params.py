"""Parameters of a private-set-union session: universe, public union bound, sketch shape, hash keys.

Everything here is public and fixed before any client encodes. The table has ``cells`` cells split
into ``hashes`` equal sub-tables (an id occupies one cell in each, so always ``hashes`` distinct
cells). ``cells`` = ceil(cells_per_id * union_bound) + extra_cells, rounded up to a multiple of
``hashes``. The density follows the 2-core thresholds of random hypergraphs (1.222 for 3 hashes,
1.295 for 4): 4 hashes with 1.4 cells per id up to a bound of 10^5 ids, 3 hashes with 1.25 beyond
(1.3 before submodel version 3). The additive ``extra_cells`` (default 256, since config type 2)
is for small bounds, where a density alone does not decode: there the failures are small stopping
sets (two ids sharing all their cells, probability about C(B, 2) (k/m)^k), which only an absolute
number of cells makes rare; with 256 a full table of any bound fails to peel at most about 10^-4 of
the time per attempt (``protocols/psu/spec.md`` §2, claim ``proofs/psu/claim-3-small-bounds.md``).

Each cell has two fields (weight, weight*id) when the universe is at most 2^32, or three (plus
weight*checksum) above, so that an impure cell passes the purity test with probability at most
max(universe/p, 2^-61) * hashes/cells per test (see the spec).
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field

from ..encoding import ProtocolCode, Reader, Writer, domain_tag
from ..errors import DecodeError, InvalidParameters
from ..hazmat.field import P61
from ..hazmat.kex import hkdf

__all__ = ["PSUParameters", "MAX_UNIVERSE", "SMALL_UNIVERSE", "DEFAULT_EXTRA_CELLS"]

MAX_UNIVERSE = P61  # ids are in [0, universe) and must be field elements
SMALL_UNIVERSE = 1 << 32
_CONFIG_TYPE = 2  # type 1 (no extra cells) is refused: the same fields gave a smaller table
_RETIRED_CONFIG_TYPES = {1: "a PSU config of type 1 (tables without the extra cells) is no longer accepted; type 2 is"}
DEFAULT_EXTRA_CELLS = 256
MAX_EXTRA_CELLS = 1 << 16


@dataclass(frozen=True)
class PSUParameters:
    universe: int
    union_bound: int
    session_id: bytes
    attempt: int = 0
    hashes: int | None = None
    cells_per_id: float | None = None
    extra_cells: int | None = None
    cells: int = field(init=False)
    hash_count: int = field(init=False, repr=False, compare=False)  # ``hashes`` once resolved
    position_key: bytes = field(init=False, repr=False)
    checksum_key: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.universe, int) or not 1 <= self.universe <= MAX_UNIVERSE:
            raise InvalidParameters(f"universe must be an integer in [1, 2^61 - 1], got {self.universe!r}")
        if not isinstance(self.union_bound, int) or self.union_bound < 1:
            raise InvalidParameters(f"union_bound must be a positive integer, got {self.union_bound!r}")
        if not isinstance(self.session_id, bytes) or not 16 <= len(self.session_id) <= 64:
            raise InvalidParameters("session_id must be 16..64 bytes")
        if not isinstance(self.attempt, int) or not 0 <= self.attempt < 64:
            raise InvalidParameters("attempt must be in [0, 64)")
        hashes = self.hashes if self.hashes is not None else (4 if self.union_bound <= 100_000 else 3)
        density = self.cells_per_id if self.cells_per_id is not None else (1.4 if hashes >= 4 else 1.25)
        if isinstance(density, (int, float)) and math.isfinite(density):
            density = round(density * 1_000_000) / 1_000_000  # what the wire form carries, exactly
        extra = self.extra_cells if self.extra_cells is not None else DEFAULT_EXTRA_CELLS
        if isinstance(extra, bool) or not isinstance(extra, int) or not 0 <= extra <= MAX_EXTRA_CELLS:
            raise InvalidParameters(f"extra_cells must be an integer in [0, {MAX_EXTRA_CELLS}], got {extra!r}")
        if hashes not in (3, 4, 5):
            raise InvalidParameters("hashes must be 3, 4 or 5")
        if not (isinstance(density, (int, float)) and math.isfinite(density) and 1.0 <= density <= 64):
            raise InvalidParameters("cells_per_id must be in [1, 64]")
        object.__setattr__(self, "hashes", hashes)
        object.__setattr__(self, "hash_count", hashes)
        object.__setattr__(self, "cells_per_id", float(density))
        object.__setattr__(self, "extra_cells", extra)
        cells = math.ceil(density * self.union_bound) + extra
        cells += (-cells) % hashes
        cells = max(cells, 2 * hashes)
        if cells >= 1 << 32:
            raise InvalidParameters("the table would exceed 2^32 cells; lower union_bound")
        object.__setattr__(self, "cells", cells)
        base = hkdf(self.session_id, b"", domain_tag("psu", "keys", self.attempt, self.digest_without_keys()), 32)
        object.__setattr__(self, "position_key", base[:16])
        object.__setattr__(self, "checksum_key", base[16:])

    @classmethod
    def create(cls, universe: int, union_bound: int, **kwargs: object) -> PSUParameters:
        session_id = kwargs.pop("session_id", None) or os.urandom(32)
        return cls(universe, union_bound, session_id, **kwargs)  # type: ignore[arg-type]

    @property
    def fields(self) -> int:
        return 2 if self.universe <= SMALL_UNIVERSE else 3

    @property
    def sub_table(self) -> int:
        return self.cells // self.hash_count

    @property
    def vector_length(self) -> int:
        """Length of the encoded sketch (the secure-aggregation dimension)."""
        return self.fields * self.cells

    def retry(self, growth: float = 1.5, minimum_bound: int = 0) -> PSUParameters:
        """The next attempt: a fresh key and a larger table (after a decode failure), with the default
        shape for the new bound (4 hashes and 1.4 cells per id up to 10^5 ids, 3 and 1.25 beyond, plus
        256 extra cells)."""
        bound = max(math.ceil(self.union_bound * growth), minimum_bound)
        return PSUParameters(self.universe, bound, self.session_id, self.attempt + 1)

    def digest_without_keys(self) -> bytes:
        return hashlib.sha256(
            Writer(ProtocolCode.PSU, _CONFIG_TYPE).u64(self.universe).u64(self.union_bound).blob(self.session_id)
            .u8(self.attempt).u8(self.hashes or 0).u64(round((self.cells_per_id or 0) * 1_000_000))
            .u32(self.extra_cells or 0).finish()
        ).digest()

    def encode(self) -> bytes:
        writer = Writer(ProtocolCode.PSU, _CONFIG_TYPE)
        writer.u64(self.universe).u64(self.union_bound).blob(self.session_id).u8(self.attempt)
        writer.u8(self.hashes or 0).u64(round((self.cells_per_id or 0) * 1_000_000)).u32(self.extra_cells or 0)
        return writer.finish()

    @classmethod
    def decode(cls, data: bytes) -> PSUParameters:
        reader = Reader(data, ProtocolCode.PSU)
        config_type = reader.u8()
        if config_type in _RETIRED_CONFIG_TYPES:
            raise DecodeError(_RETIRED_CONFIG_TYPES[config_type])
        if config_type != _CONFIG_TYPE:
            raise DecodeError("not a PSU config")
        universe, bound = reader.u64(), reader.u64()
        session_id = bytes(reader.blob(64))
        attempt, hashes, density, extra = reader.u8(), reader.u8(), reader.u64(), reader.u32()
        reader.done()
        try:
            return cls(universe, bound, session_id, attempt, hashes, density / 1_000_000, extra)
        except InvalidParameters as exc:
            raise DecodeError(f"invalid PSU config: {exc}") from None
