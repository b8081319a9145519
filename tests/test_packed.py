"""Packed per-peer records of a secure-aggregation client (fedprivacy/secagg/packed.py)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from fedprivacy.errors import InvalidParameters

from fedprivacy.secagg.packed import pack_byte_pairs, pack_bytes, pack_limb_pairs


def test_packed_tables_read_back_what_was_packed_and_pickle():
    limbs = {9: ((1, 2, 3, 4, 5), (6, 7, 8, 9, (1 << 61) - 2)), 2: ((0,) * 5, (1,) * 5), 700: ((3,) * 5, (4,) * 5)}
    keys = {9: (b"a" * 32, b"b" * 32), 2: (b"c" * 32, b"d" * 32)}
    secrets = {4: b"k" * 16, 1: b"j" * 16}
    for source, table in ((limbs, pack_limb_pairs(limbs, 5)), (keys, pack_byte_pairs(keys, 32)),
                          (secrets, pack_bytes(secrets, 16))):
        for candidate in (table, pickle.loads(pickle.dumps(table))):
            assert list(candidate) == sorted(source) and len(candidate) == len(source)
            assert dict(candidate.items()) == source and {k: candidate[k] for k in candidate} == source
            assert all(np.int64(k) in candidate for k in source)
            assert 3 not in candidate and "9" not in candidate and True not in candidate
            assert candidate.get(3) is None and candidate.get(3, "x") == "x"
            assert "PackedTable" in repr(candidate) and "k" * 16 not in repr(candidate)


def test_select_reads_many_records_in_the_given_order():
    keys = {9: (b"a" * 32, b"b" * 32), 2: (b"c" * 32, b"d" * 32), 40: (b"e" * 32, b"f" * 32)}
    table = pack_byte_pairs(keys, 32)
    assert table.select([40, 2, 9, 2]) == [keys[40], keys[2], keys[9], keys[2]]
    assert table.select(np.array([], dtype=np.int64)) == []
    with pytest.raises(KeyError):
        table.select([2, 3])
    assert table.select([3, 9, 41, 1], missing_ok=True) == [None, keys[9], None, None]
    empty = pack_bytes({}, 16)
    assert empty.select([], missing_ok=False) == [] and empty.select([5], missing_ok=True) == [None]
    with pytest.raises(KeyError):
        empty.select([5])


def test_packing_refuses_records_of_the_wrong_size():
    with pytest.raises(InvalidParameters):
        pack_bytes({1: b"a" * 15, 2: b"b" * 17}, 16)
    with pytest.raises(InvalidParameters):
        pack_byte_pairs({1: (b"a" * 31, b"b" * 33)}, 32)
    with pytest.raises(InvalidParameters):
        pack_limb_pairs({1: ((1, 2, 3, 4), (5, 6, 7, 8, 9, 10))}, 5)
