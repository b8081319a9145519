"""The server's plan on a sparse rows' graph: each party's part (sharing, partners, bitmap, and the
positions, bitmap and compact wire forms) is built from the party's own (row, partner) pairs and must
give the bytes the per-peer reference gives.

The reference here is independent of the sparse window: each party's neighbours are read off the ring
(distance <= k/2, wrapping around), its shared rows are intersections with each neighbour's rows, and
the explicit ``ClientRowPlan`` built from them is encoded by the generic per-peer encoder. The former
sparse bitmap builder (a rows x partners boolean matrix) is kept below as a second oracle.
protocols/submodel/spec.md, "Sparse rows"; protocols/secagg/spec.md §12 (the plan's forms)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fedprivacy.errors import InvalidParameters
from fedprivacy.secagg import rows as rows_module
from fedprivacy.secagg.rows import (
    ClientRowPlan,
    RowPlan,
    _aligned_codes,
    _concatenated_ranges,
    _row_starts,
    _window_ranges,
    rows_in_use,
    sparse_row_peel,
)


def _reference_sharing(ring: list[int], k: int, chosen: dict[int, np.ndarray]) -> dict[int, dict[int, np.ndarray]]:
    """Per party, per ring neighbour that shares a row with it: the shared rows (brute force)."""
    n, half = len(ring), k // 2
    out = {}
    for party, rows in chosen.items():
        at = ring.index(party)
        neighbours = {ring[(at + offset) % n] for offset in range(-half, half + 1) if offset}
        shared = {}
        for peer in sorted(neighbours & set(chosen)):
            common = np.intersect1d(rows, chosen[peer], assume_unique=True)
            if common.size:
                shared[peer] = common
        out[party] = shared
    return out


def _former_client_bits(plan: RowPlan, party: int) -> tuple[np.ndarray, np.ndarray]:
    """The bitmap form as the sparse path built it before: a (rows x partners) boolean matrix packed."""
    window, where = plan._window, plan.positions(party)
    n, own = window.n, window.position[party]
    rows = where.astype(np.int64)
    position = np.full(rows.shape[0], own, dtype=np.int64)
    owners, partners = [], []
    for starts, ends in _window_ranges(window.keys, rows, position, n, window.half):
        owner, index = _concatenated_ranges(starts, np.maximum(ends, starts))
        owners.append(owner)
        partners.append(window.keys[index] % n)
    owner, partner = np.concatenate(owners), np.concatenate(partners)
    others = partner != own
    owner, party_of = owner[others], window.ring[partner[others]]
    columns = np.union1d(party_of, np.array([party], dtype=np.int64))
    member = np.zeros((rows.shape[0], columns.shape[0]), dtype=bool)
    member[:, int(np.searchsorted(columns, party))] = True
    member[owner, np.searchsorted(columns, party_of)] = True
    return columns, np.packbits(member, axis=1)


def _check_plan(ring: list[int], k: int, union: np.ndarray, chosen: dict[int, np.ndarray], members: list[int],
                width: int = 3) -> None:
    """Both ways to the compact form: from the party's pairs (a sort) and by filtering its rows'
    chooser lists (chosen by their expected costs; forced here each way)."""
    chooser = rows_module._filter_cheaper
    try:
        for way in (False, True, None):  # from the pairs, by the filter, as the costs choose
            rows_module._filter_cheaper = chooser if way is None else (lambda *_, way=way: way)
            _check_plan_once(ring, k, union, chosen, members, width)
    finally:
        rows_module._filter_cheaper = chooser


def _check_plan_once(ring: list[int], k: int, union: np.ndarray, chosen: dict[int, np.ndarray], members: list[int],
                     width: int) -> None:
    plan = RowPlan(union, width, chosen, ring=ring, neighbours=k)
    assert plan._window is not None
    reference = _reference_sharing(ring, k, chosen)
    for party, rows in chosen.items():
        mine = plan.for_client(party)
        explicit = ClientRowPlan(party, width, rows, reference[party])  # encoded by the per-peer encoder
        expected = [(peer, np.searchsorted(rows, common).tolist()) for peer, common in reference[party].items()]
        assert [(peer, positions.tolist()) for peer, positions in mine.sharing()] == expected
        assert [(peer, positions.tolist()) for peer, positions in plan._shared_positions(party, in_union=True)] == [
            (peer, np.searchsorted(union, common).tolist()) for peer, common in reference[party].items()]
        assert plan.partners(party).tolist() == list(reference[party])
        columns, bits = plan._client_bits(party)
        former_columns, former_bits = _former_client_bits(plan, party)
        assert columns.tolist() == former_columns.tolist() and bits.tolist() == former_bits.tolist()
        assert bits.dtype == former_bits.dtype and bits.shape == former_bits.shape
        assert mine.encode() == explicit.encode()  # the positions or the bitmap form, whichever is shorter
        data = mine.encode(members)
        assert data == explicit.encode(members)  # the compact form (type 18)
        decoded = ClientRowPlan.decode(data, members)
        assert decoded.rows.tolist() == rows.tolist()
        assert [(peer, positions.tolist()) for peer, positions in decoded.sharing()] == expected
        assert ClientRowPlan.decode(mine.encode()).encode(members) == data
    fresh = RowPlan(union, width, chosen, ring=ring, neighbours=k)  # the sum's lists built first, then shared
    for party, rows in chosen.items():
        assert fresh.for_client(party).encode(members) == ClientRowPlan(party, width, rows, reference[party]).encode(members)
    for party, rows in chosen.items():
        assert [(peer, positions.tolist()) for peer, positions in fresh._shared_positions(party)] == [
            (peer, np.searchsorted(rows, common).tolist()) for peer, common in reference[party].items()]


@st.composite
def _sparse_plans(draw):
    n = draw(st.integers(4, 14))
    k = draw(st.integers(2, n - 2))  # k = n - 2 included; odd k acts as k - 1 (distance <= k // 2)
    ids = draw(st.lists(st.integers(1, 2**32 - 1), min_size=n, max_size=n, unique=True))
    ring = draw(st.permutations(ids))
    union = np.array(sorted(draw(st.sets(st.integers(0, 2**63), min_size=1, max_size=24))), dtype=np.uint64)
    rows = union.tolist()
    in_plan = draw(st.lists(st.sampled_from(ids), min_size=1, unique=True))  # the others chose nothing
    chosen = {p: np.array(sorted(draw(st.sets(st.sampled_from(rows)))), dtype=np.uint64) for p in in_plan}
    extra = draw(st.lists(st.integers(1, 2**32 - 1).filter(lambda p: p not in ids), max_size=2, unique=True))
    return list(ring), k, union, chosen, sorted([*ids, *extra])


@settings(max_examples=60)
@given(_sparse_plans())
def test_a_sparse_plan_encodes_each_party_as_the_per_peer_reference_does(case):
    _check_plan(*case)


def test_sparse_plans_with_wrap_around_empty_parties_rowless_partners_and_k_n_minus_2():
    rng = np.random.default_rng(1401)
    for n, k, union_size, per in [(6, 4, 10, 5), (8, 6, 40, 30), (9, 7, 30, 3), (12, 2, 8, 8),
                                  (40, 38, 200, 60), (60, 20, 500, 120), (101, 30, 2000, 300)]:
        ids = rng.choice(np.arange(1, 10 * n), n, replace=False).tolist()
        ring = rng.permutation(ids).tolist()
        union = np.sort(rng.choice(2**40, union_size, replace=False)).astype(np.uint64)
        chosen = {p: np.sort(rng.choice(union, int(rng.integers(0, per + 1)), replace=False)) for p in ids}
        chosen[ring[0]] = np.zeros(0, dtype=np.uint64)  # a party with no rows
        chosen[ring[-1]] = union[:1].copy()  # and one whose window wraps around to ring[0]
        _check_plan(ring, k, union, chosen, sorted(ids))
    # Every window wraps (n = 4, k = 2); a row nobody else chose has no partners.
    ring = [7, 3, 9, 5]
    union = np.array([10, 20, 30], dtype=np.uint64)
    chosen = {7: np.array([10, 20], dtype=np.uint64), 3: np.array([30], dtype=np.uint64),
              9: np.array([], dtype=np.uint64), 5: np.array([10, 30], dtype=np.uint64)}
    _check_plan(ring, 2, union, chosen, [3, 5, 7, 9])
    plan = RowPlan(union, 3, chosen, ring=ring, neighbours=2)
    assert dict(plan._shared_positions(7)).keys() == {5}  # 5 (ring position 3) wraps to 7 (position 0)
    assert plan.partners(3).tolist() == [] and plan.partners(9).tolist() == []


def test_a_sparse_compact_plan_names_the_first_partner_outside_the_sum():
    ring = [4, 1, 3, 2, 6, 5]
    union = np.array([1, 2], dtype=np.uint64)
    chosen = {p: union.copy() for p in ring}
    plan = RowPlan(union, 2, chosen, ring=ring, neighbours=2)
    with pytest.raises(InvalidParameters, match="partner 3 is not a party of the sum"):
        plan.for_client(2).encode([1, 2, 4, 5, 6])  # 2's neighbours are 3 and 6
    with pytest.raises(InvalidParameters, match="not a party of the sum"):
        plan.for_client(2).encode([1, 3, 6])
    assert plan.for_client(2).encode([2, 3, 6]) == ClientRowPlan(2, 2, union, {3: union, 6: union}).encode([2, 3, 6])


def _former_aligned_codes(counts: np.ndarray, gaps: np.ndarray, k: int):
    """The compact form's per-row codes as they were built before (bit by bit, per entry's row)."""
    starts = _row_starts(counts)
    entries, count = gaps.shape[0], counts.shape[0]
    row_of = np.repeat(np.arange(count, dtype=np.int64), counts)
    steps = np.zeros(entries + 1, dtype=np.int64)
    np.cumsum((gaps >> k) + 1, out=steps[1:])
    relative = steps[1:] - 1 - steps[starts[:-1]][row_of]
    unary_len = np.zeros(count, dtype=np.int64)
    chosen = counts > 0
    unary_len[chosen] = (relative[starts[1:][chosen] - 1] >> 3) + 1
    unary_off = _row_starts(unary_len)
    bits = np.zeros(8 * int(unary_off[-1]), dtype=np.uint8)
    bits[8 * unary_off[:-1][row_of] + relative] = 1
    unary = np.packbits(bits)
    rem_off = _row_starts((counts * k + 7) >> 3)
    bits = np.zeros(8 * int(rem_off[-1]), dtype=np.uint8)
    if k:
        first = 8 * rem_off[:-1][row_of] + (np.arange(entries, dtype=np.int64) - starts[:-1][row_of]) * k
        for bit in range(k):
            bits[first + bit] = (gaps >> (k - 1 - bit)) & 1
    return unary, unary_off, np.packbits(bits), rem_off


@settings(max_examples=80)
@given(st.lists(st.lists(st.integers(0, 2**40), max_size=12), max_size=30), st.integers(0, 56))
def test_row_codes_match_the_former_bit_by_bit_builder(rows, k):
    counts = np.array([len(row) for row in rows], dtype=np.int64)
    gaps = np.array([gap for row in rows for gap in row], dtype=np.int64)
    gaps = np.minimum(gaps, (1 << min(62, k + 4)) - 1)  # quotients of a few bits, as the Rice parameter keeps them
    for mine, former in zip(_aligned_codes(counts, gaps, k), _former_aligned_codes(counts, gaps, k)):
        assert mine.dtype == former.dtype and mine.tolist() == former.tolist()


def _former_peel(chosen, ring, neighbours, min_partners):
    """The peel as it was before: every pass counts every pair's window with searches over all pairs."""
    n, half = len(ring), neighbours // 2
    position = {int(party): index for index, party in enumerate(ring)}
    ring_array = np.asarray(ring, dtype=np.int64)
    parties = [party for party in chosen if chosen[party].shape[0]]
    if not parties:
        return {party: np.zeros(0, dtype=np.uint64) for party in chosen}
    union = np.unique(np.concatenate([chosen[party] for party in parties]))
    keys = np.sort(np.concatenate([np.searchsorted(union, chosen[party]).astype(np.int64) * n + position[party]
                                   for party in parties]))
    while keys.shape[0]:
        rows, where = np.divmod(keys, n)
        count = -np.ones(keys.shape[0], dtype=np.int64)
        for starts, ends in _window_ranges(keys, rows, where, n, half):
            count += np.maximum(ends - starts, 0)
        keep = count >= min_partners
        if bool(keep.all()):
            break
        keys = keys[keep]
    rows, where = np.divmod(keys, n)
    owner = ring_array[where]
    order = np.argsort(owner, kind="stable")
    owner, rows = owner[order], union[rows[order]]
    cuts = np.searchsorted(owner, np.array(sorted(chosen), dtype=np.int64))
    ends = np.searchsorted(owner, np.array(sorted(chosen), dtype=np.int64), "right")
    return {party: rows[start:end] for party, start, end in zip(sorted(chosen), cuts.tolist(), ends.tolist())}


@settings(max_examples=60)
@given(_sparse_plans(), st.integers(0, 12), st.booleans())
def test_the_peel_keeps_what_the_former_peel_kept(case, need, given_union):
    ring, k, union, chosen, _ = case
    peeled = sparse_row_peel(chosen, ring, k, need, union=union if given_union else None)
    former = _former_peel(chosen, ring, k, need)
    assert list(peeled) == list(former)
    for party, rows in former.items():
        assert peeled[party].dtype == rows.dtype and peeled[party].tolist() == rows.tolist()
    assert rows_in_use(peeled, union).tolist() == sorted({int(r) for rows in former.values() for r in rows})


def test_the_peel_at_scale_matches_the_former_peel_for_each_need():
    rng = np.random.default_rng(1402)
    n, k = 120, 40
    ring = rng.permutation(np.arange(1, n + 1)).tolist()
    union = np.sort(rng.choice(2**50, 3000, replace=False)).astype(np.uint64)
    chosen = {p: np.sort(rng.choice(union, int(rng.integers(0, 200)), replace=False)) for p in ring}
    for need in (1, 2, 3, 5, 9, 12):  # nearest partners up to 8, window counts above
        peeled, former = sparse_row_peel(chosen, ring, k, need), _former_peel(chosen, ring, k, need)
        assert {p: rows.tolist() for p, rows in peeled.items()} == {p: rows.tolist() for p, rows in former.items()}
        assert sum(rows.shape[0] for rows in former.values()) < sum(rows.shape[0] for rows in chosen.values())


def test_the_peel_refuses_rows_outside_the_union_it_is_given():
    chosen = {1: np.array([5, 9], dtype=np.uint64), 2: np.array([5], dtype=np.uint64)}
    with pytest.raises(InvalidParameters, match="outside the union"):
        sparse_row_peel(chosen, [1, 2, 3, 4], 2, 1, union=np.array([5, 7], dtype=np.uint64))
