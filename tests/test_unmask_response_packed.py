"""A client keeps its unmasking answer packed: the same bytes as the tuple form, in two arrays."""

from __future__ import annotations

import numpy as np

from fedprivacy.secagg.client import _packed_shares
from fedprivacy.secagg.messages import SECRET_LIMBS, PackedShares, UnmaskResponse, decode_message


def test_packed_answer_encodes_as_the_tuple_form():
    rng = np.random.default_rng(5)
    pairs = [(int(owner), tuple(int(v) for v in rng.integers(0, 1 << 56, SECRET_LIMBS, dtype=np.uint64)))
             for owner in rng.permutation(np.arange(1, 400))[:250]]
    keys = pairs[:3]
    packed = UnmaskResponse(7, _packed_shares(pairs), _packed_shares(keys))
    plain = UnmaskResponse(7, tuple(sorted(pairs)), tuple(sorted(keys)))
    assert isinstance(packed.seed_shares, PackedShares) and packed.seed_shares.limbs.nbytes == 250 * SECRET_LIMBS * 8
    assert packed.to_bytes() == plain.to_bytes()
    assert packed.seed_shares == tuple(sorted(pairs))  # equal to the tuples it stands for
    decoded = decode_message(packed.to_bytes())
    assert isinstance(decoded, UnmaskResponse) and decoded.seed_shares == packed.seed_shares
    empty = UnmaskResponse(7, _packed_shares([]), _packed_shares(()))
    assert empty.to_bytes() == UnmaskResponse(7, (), ()).to_bytes()
