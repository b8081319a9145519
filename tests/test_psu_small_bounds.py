"""PSU tables for small union bounds (config type 2: ``extra_cells``), and the symptom they fix.

The symptom: a submodel round whose union bound is capped by a tiny universe (bound = universe = 34,
every id held) got a table of 48 cells that failed to peel about 1 attempt in 4; a rerun cannot grow
the table past the cap, so all attempts of a round failed in a few percent of rounds. The rule and its
measurement: ``protocols/psu/spec.md`` §2 and claim psu/3 (``proofs/psu/claim-3-small-bounds.md``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fedprivacy.errors import DecodeError, InvalidParameters, RemoteProtocolError
from fedprivacy.hazmat.field import add_p61
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.psu import PSUParameters, PSUServer, RerunPolicy, UnionDecodeFailure, encode_set
from fedprivacy.submodel.messages import RoundStart

from .test_submodel_parties import _parties, _wire

SESSION = b"fedprivacy psu small bounds 0001"
UNIVERSE = 34
ROUNDS = 400


def _holdings(seed: int) -> list[np.ndarray]:
    """Four clients' sets covering every id of the universe (each id held by one to four clients)."""
    rng = np.random.default_rng(seed)
    owner = rng.integers(0, 4, UNIVERSE)  # every id has one holder for sure ...
    extra = rng.random((4, UNIVERSE)) < 0.3  # ... and others hold it at random
    return [np.flatnonzero((owner == c) | extra[c]).astype(np.uint64) for c in range(4)]


def _psu_round(seed: int) -> tuple[int, np.ndarray | None]:
    """One PSU as a capped submodel round runs it: bound min(n * max_set_size, universe) = universe,
    reruns as ``RerunPolicy`` decides with the cap as ``max_bound``; plain sums (secure aggregation
    returns exactly this sum). (attempts started, the union or None when every attempt failed)."""
    sets = _holdings(seed)
    params = PSUParameters(UNIVERSE, min(4 * UNIVERSE, UNIVERSE), seed.to_bytes(4, "little") + SESSION[4:])
    rerun = RerunPolicy(max_attempts=3, max_bound=UNIVERSE)
    attempts = 0
    while True:
        attempts += 1
        total = np.zeros(params.vector_length, dtype=np.uint64)
        for client, ids in enumerate(sets):
            source = DeterministicRandomness(f"small bounds/{seed}/{attempts}/{client}")
            total = add_p61(total, encode_set(params, ids, random_bytes=source))
        try:
            return attempts, PSUServer(params).decode(total)
        except UnionDecodeFailure as failure:
            following = rerun.next_attempt(params, failure, attempts)
            if following is None:
                return attempts, None
            assert following.union_bound == UNIVERSE  # the cap: a rerun cannot grow the table
            params = following


def test_a_table_capped_by_a_tiny_universe_decodes_when_every_id_is_held():
    """400 rounds (fixed seeds) of the capped PSU with every id of a 34-id universe held.

    Before config type 2 (48 cells), measured on this exact test: 186 of 400 first attempts failed and
    29 of 400 rounds failed all three attempts. Now the test fails if 5 or more of the 400 first attempts
    fail or if any round fails. False alarm: if one attempt fails with probability at most 10^-3 (claim
    psu/3 checks this; measured about 5·10^-5), P(Bin(400, 10^-3) >= 5) < 10^-4, and a round fails
    only when its three attempts (independent keys) all do: <= 400 · 10^-9."""
    first_failures = failed_rounds = 0
    for seed in range(ROUNDS):
        attempts, union = _psu_round(seed)
        first_failures += attempts > 1
        if union is None:
            failed_rounds += 1
        else:
            assert union.tolist() == list(range(UNIVERSE))
    assert first_failures <= 4 and failed_rounds == 0, (first_failures, failed_rounds)


def test_the_cell_count_rule_and_its_wire_form():
    params = PSUParameters(UNIVERSE, UNIVERSE, SESSION)
    assert (params.hashes, params.cells_per_id, params.extra_cells) == (4, 1.4, 256)
    assert params.cells == 304 and params.sub_table == 76  # ceil(1.4 * 34) + 256 = 304, a multiple of 4
    assert PSUParameters(10**6, 1, SESSION).cells == 260  # 2 + 256, rounded up to a multiple of 4
    big = PSUParameters(1 << 40, 200_000, SESSION)
    assert (big.hashes, big.cells) == (3, 250_257)  # 250,000 + 256 rounded up to a multiple of 3
    bare = PSUParameters(UNIVERSE, UNIVERSE, SESSION, extra_cells=0)
    assert bare.cells == 48  # the type-1 table
    for p in (params, big, bare, PSUParameters(10**9, 5, SESSION, 3, 5, 2.5, 1000)):
        assert PSUParameters.decode(p.encode()) == p
    # The extra cells are part of the key derivation: a different table never shares a key.
    assert bare.position_key != params.position_key and bare.checksum_key != params.checksum_key
    for bad in (-1, 1 << 17, 2.0, True):
        with pytest.raises(InvalidParameters, match="extra_cells"):
            PSUParameters(UNIVERSE, UNIVERSE, SESSION, extra_cells=bad)
    # Reruns keep the default shape for the new bound, extra cells included.
    assert params.retry().extra_cells == 256
    failure = UnionDecodeFailure(0, 10, 30.0)
    assert RerunPolicy(max_bound=1000).next_attempt(bare, failure, 1).extra_cells == 256


def test_a_type_1_config_is_refused_with_a_decode_error():
    encoded = bytearray(PSUParameters(UNIVERSE, UNIVERSE, SESSION).encode())
    assert encoded[6] == 2  # "FPRV", the format version u8, the protocol u8, then the config type
    type_1 = bytes(encoded[:6]) + b"\x01" + bytes(encoded[7:-4])  # type 1 had no extra-cells field
    with pytest.raises(DecodeError, match="type 1"):
        PSUParameters.decode(type_1)
    with pytest.raises(DecodeError, match="type 1"):
        PSUParameters.decode(bytes(encoded[:6]) + b"\x01" + bytes(encoded[7:]))
    with pytest.raises(DecodeError):
        PSUParameters.decode(bytes(encoded[:-1]))  # truncated extra-cells field
    with pytest.raises(DecodeError):
        PSUParameters.decode(bytes(encoded[:-4]) + (1 << 17).to_bytes(4, "big"))  # out of range


def test_a_round_client_refuses_a_table_without_the_extra_cells():
    server, clients, _ = _parties()
    outbound = server.start()
    start, party = outbound[0].message, outbound[0].recipient
    assert start.psu_params.extra_cells == 256
    bare = PSUParameters(500, start.psu_params.union_bound, start.psu_params.session_id, extra_cells=0)
    with pytest.raises(RemoteProtocolError, match="default shape"):
        clients[party].receive(_wire(RoundStart(party, 0, start.settings, bare,
                                                replace(start.psu_config, dim=bare.vector_length), start.rows_config)))
