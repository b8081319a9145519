"""Check for claim submodel/3 (see claim-3-union-limit.md): a successful peel of a table of m cells
returns exactly the encoded set and at most m ids, and tables peel sets above their nominal bound.

Runs the production encoder and peeler (``fedprivacy.psu.iblt``)."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, strategies as st

from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.psu.iblt import encode_set, peel
from fedprivacy.psu.params import PSUParameters

SESSION = b"claim submodel/3 union limit 001"


def _peeled(params: PSUParameters, ids: np.ndarray, tag: str) -> np.ndarray | None:
    result = peel(params, encode_set(params, ids, random_bytes=DeterministicRandomness(tag)))
    return result.ids if result.success else None


def test_every_subset_of_a_small_universe_peels_to_itself_and_never_above_the_cells():
    universe = 10
    for params in (PSUParameters(universe, 1, SESSION, extra_cells=0),  # 4 hashes: 8 cells
                   PSUParameters(universe, 2, SESSION, hashes=3, cells_per_id=1.25)):  # 3 hashes: 6 cells
        above_bound = 0
        for size in range(universe + 1):
            for subset in itertools.combinations(range(universe), size):
                ids = np.array(subset, dtype=np.uint64)
                out = _peeled(params, ids, f"{params.cells}/{subset}")
                if out is None:
                    continue
                assert np.array_equal(out, ids) and out.shape[0] <= params.cells
                above_bound += out.shape[0] > params.union_bound
        assert above_bound > 0  # unions above the nominal bound decode: the limit cannot be the bound


@given(st.sampled_from([25, 48]), st.data())
def test_random_sets_up_to_twice_the_cells_peel_to_themselves_and_never_above_the_cells(bound, data):
    params = PSUParameters(1 << 20, bound, SESSION, extra_cells=0)  # 4 hashes, 1.4 per id: 36 and 68 cells
    size = data.draw(st.integers(1, 2 * params.cells))
    ids = np.unique(np.array(data.draw(st.lists(st.integers(0, (1 << 20) - 1), min_size=size, max_size=size)),
                             dtype=np.uint64))
    out = _peeled(params, ids, f"random/{bound}/{size}")
    if out is not None:
        assert np.array_equal(out, ids) and out.shape[0] <= params.cells
