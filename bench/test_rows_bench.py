"""pytest-benchmark suite for the pieces of a large secure submodel round (run with `make bench`).

The geometry follows the bench round at n = 1,000 clients, M = 300 items, U = 10^6, d = 18, CPP2:
a union of ~90,000 rows, each row chosen by ~12% of the clients, 19 words per row (18 weights and a
count) mod 2^64; the full graph's Shamir threshold is 890 of 1,000. Compare medians from the same
machine only.
"""

from __future__ import annotations

import numpy as np
import pytest

from fedprivacy.hazmat import shamir
from fedprivacy.hazmat.field import Modulus
from fedprivacy.hazmat.prg import DeterministicRandomness, MaskExpander
from fedprivacy.secagg import RowPlan
from fedprivacy.secagg.rows import ClientRowPlan

RNG = np.random.default_rng(0)  # public synthetic plan
UNION = np.sort(RNG.choice(1_000_000, 90_000, replace=False)).astype(np.uint64)


@pytest.fixture(scope="module")
def plan_1000() -> RowPlan:
    return RowPlan(UNION, 19, {p: UNION[RNG.random(UNION.shape[0]) < 0.12] for p in range(1, 1001)})


def test_row_masking_one_client_of_1000(benchmark, plan_1000):
    keys = {p: p.to_bytes(16, "big") for p in range(1, 1001)}
    client = plan_1000.for_client(1)

    def mask() -> None:
        vector = np.zeros(client.input_length, dtype=np.uint64)
        client.mask(vector, keys[1], keys, Modulus.U64)

    benchmark.pedantic(mask, rounds=5, iterations=1)


def test_compact_plan_encode_one_client_of_1000(benchmark, plan_1000):
    """The server's part of a row download: one client's compact plan (type 18) from the union rows' codes."""
    members = np.arange(1, 1001)
    benchmark.pedantic(lambda: plan_1000.for_client(1).encode(members), rounds=5, iterations=1)


def test_compact_plan_decode_one_client_of_1000(benchmark, plan_1000):
    """The client's part: decoding and checking that plan, into its peers' shared positions."""
    members = np.arange(1, 1001)
    data = plan_1000.for_client(1).encode(members)
    benchmark.pedantic(ClientRowPlan.decode, (data, members), rounds=5, iterations=1)


def test_row_unmasking_one_dropped_party_of_1000(benchmark, plan_1000):
    keys = {p: p.to_bytes(16, "big") for p in range(2, 1001)}
    unmasker = plan_1000.unmasker(Modulus.U64)
    benchmark.pedantic(unmasker.remove_pair_masks, (1, keys), rounds=5, iterations=1)


def test_shamir_share_10_limbs_1000_holders_t890(benchmark):
    secrets = np.arange(10, dtype=np.uint64)
    holders = list(range(1, 1001))
    shamir.share(secrets, holders, 890, DeterministicRandomness("warm"))  # the powers, once per point set
    benchmark(shamir.share, secrets, holders, 890, DeterministicRandomness("bench"))


def test_psu_sketch_masking_780k_words_39_masks(benchmark):
    vector = np.zeros(780_000, dtype=np.uint64)
    masks = [(bytes([i]) * 16, i % 2 == 0) for i in range(39)]
    benchmark(MaskExpander(Modulus.P61).apply_many, vector, masks)


def test_shamir_reconstruct_1000_secrets_t899_one_holder_set(benchmark):
    """The rows' sum at unmasking: every secret rebuilt from the same 899 holders."""
    shares = RNG.integers(0, (1 << 61) - 1, size=(1000, 899, 5), dtype=np.uint64)
    xs = np.broadcast_to(np.arange(1, 900, dtype=np.int64), (1000, 899))
    benchmark.pedantic(shamir.reconstruct_many, (shares, xs), rounds=3, iterations=1)


def test_shamir_reconstruct_1000_secrets_t52_distinct_holder_sets(benchmark):
    """The PSU's sum at unmasking (SecAgg+ graph, k = 78): a holder set per secret."""
    shares = RNG.integers(0, (1 << 61) - 1, size=(1000, 52, 5), dtype=np.uint64)
    xs = np.sort(np.stack([RNG.choice(np.arange(1, 1001), 52, replace=False) for _ in range(1000)]), axis=1)
    benchmark.pedantic(shamir.reconstruct_many, (shares, xs), rounds=3, iterations=1)
