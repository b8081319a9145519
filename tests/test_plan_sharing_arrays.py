"""``ClientRowPlan.sharing_arrays`` and ``partner_counts`` (the client's plan checks and thin-row
zeroing read them instead of looping over peers): equal to what ``sharing()`` says, for every way a
plan is made -- explicit, over a server's plan, and decoded from each wire form."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedprivacy.secagg.rows import ClientRowPlan, RowPlan


def _loop_counts(plan: ClientRowPlan, among: set[int] | None = None) -> list[int]:
    counts = np.zeros(plan.rows.shape[0], dtype=np.int64)
    for peer, positions in plan.sharing():
        if among is None or peer in among:
            counts[positions] += 1
    return counts.tolist()


def _assert_matches(plan: ClientRowPlan, among: set[int]) -> None:
    peers, offsets, positions = plan.sharing_arrays()
    expected = list(plan.sharing())
    assert peers.tolist() == [peer for peer, _ in expected]
    assert offsets[0] == 0 and offsets.shape[0] == peers.shape[0] + 1
    assert [positions[offsets[i]:offsets[i + 1]].tolist() for i in range(peers.shape[0])] == \
        [where.tolist() for _, where in expected]
    assert plan.partner_counts().tolist() == _loop_counts(plan)
    assert plan.partner_counts(np.array(sorted(among), dtype=np.int64)).tolist() == _loop_counts(plan, among)


def _plans(parties: int, union: int, per: int, seed: int):
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(10**6, union, replace=False)).astype(np.uint64)
    chosen = {p: np.sort(rng.choice(rows, rng.integers(1, min(per, union) + 1), replace=False))
              for p in range(1, parties + 1)}
    server = RowPlan(rows, 3, chosen)
    members = list(range(1, parties + 1))
    for party in chosen:
        mine = server.for_client(party)
        yield mine  # over the server's plan
        yield ClientRowPlan(party, mine.width, mine.rows, mine.shared)  # explicit
        yield ClientRowPlan.decode(mine.encode(members), members)  # compact form
        yield ClientRowPlan.decode(mine.encode())  # positions or bitmap form, whichever is shorter


@pytest.mark.parametrize("shape", [(1, 5, 5), (2, 3, 3), (6, 40, 2), (12, 200, 120), (30, 300, 200)])
def test_sharing_arrays_and_partner_counts_equal_the_loop_over_sharing(shape):
    rng = np.random.default_rng(sum(shape))
    for plan in _plans(*shape, seed=sum(shape)):
        among = {p for p in range(1, shape[0] + 1) if rng.random() < 0.5}
        _assert_matches(plan, among)


def test_a_positions_form_with_a_peer_sharing_nothing_leaves_it_out():
    plan = ClientRowPlan(1, 2, [3, 5, 9], {2: [5], 3: [], 4: [3, 9]})
    peers, offsets, positions = plan.sharing_arrays()
    assert peers.tolist() == [2, 4] and offsets.tolist() == [0, 1, 3] and positions.tolist() == [1, 0, 2]
    assert plan.partner_counts().tolist() == [1, 1, 1]
    assert plan.partner_counts(np.array([4])).tolist() == [1, 0, 1]
    assert plan.partner_counts(np.array([3])).tolist() == [0, 0, 0]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.integers(1, 8), st.integers(1, 30), st.integers(1, 30), st.integers(0, 2**32 - 1))
def test_sharing_arrays_match_for_random_plans(parties, union, per, seed):
    rng = np.random.default_rng(seed)
    for plan in _plans(parties, union, per, seed):
        _assert_matches(plan, {p for p in range(1, parties + 1) if rng.random() < 0.5})
