"""Check for claim secagg/4 (see claim-4-masked-view.md)."""

from __future__ import annotations

import itertools

import numpy as np

from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.secagg import DropoutSchedule, SecAggStep, SecAggConfig, run_secagg_round
from fedprivacy.secagg.graph import all_neighbourhoods
from fedprivacy.secagg.messages import MaskedInput, UnmaskResponse, decode_message
from fedprivacy.policy import weakened_policy

from .common import inputs_for, recoverable


def test_server_never_holds_t_shares_of_the_secret_that_still_hides_an_input():
    config = SecAggConfig((1, 2, 3, 4, 5), 4, 1, 4, 3, b"proof: secagg masked view 0000001")
    graph = all_neighbourhoods(config)
    inputs = inputs_for(config)
    checked = 0
    for pattern in itertools.product([None, *SecAggStep], repeat=5):
        drops = {p: s for p, s in zip(config.party_ids, pattern) if s is not None}
        received: list[bytes] = []
        report = run_secagg_round(
            config,
            inputs,
            DropoutSchedule(drops, late=frozenset(drops)),
            random_source=lambda p: DeterministicRandomness(f"view{pattern}{p}"),
            observer=lambda sender, recipient, data: received.append(data) if recipient == 0 else None, policy=weakened_policy(),
        )
        seed_shares = {p: 0 for p in config.party_ids}
        key_shares = {p: 0 for p in config.party_ids}
        uploads = {}
        for data in received:
            message = decode_message(data)
            if isinstance(message, UnmaskResponse):
                for owner, _ in message.seed_shares:
                    seed_shares[owner] += 1
                for owner, _ in message.key_shares:
                    key_shares[owner] += 1
            elif isinstance(message, MaskedInput):
                uploads[message.sender] = message.vector
        for party, upload in uploads.items():
            counted = party in report.input_ids
            # The secret that still hides this party's upload stays below t shares.
            hidden = key_shares[party] if counted else seed_shares[party]
            assert hidden < config.threshold, (pattern, party)
            assert not (seed_shares[party] and key_shares[party]), (pattern, party)
            assert not np.array_equal(upload, inputs[party])
        checked += bool(recoverable(config, graph, drops))
    assert checked > 0


def test_only_the_full_sum_is_unmasked():
    """Zero inputs: the output is zero, yet no upload and no partial sum of uploads shows the zeros."""
    config = SecAggConfig((1, 2, 3, 4), 64, 1, 3, 3, b"proof: secagg masked view layers")
    inputs = {p: np.zeros(64, dtype=np.uint32) for p in config.party_ids}
    uploads = {}
    report = run_secagg_round(
        config,
        inputs,
        observer=lambda s, r, d: uploads.__setitem__(s, decode_message(d)) if r == 0 and d[6] == 5 else None,
        random_source=lambda p: DeterministicRandomness(f"layers{p}"), policy=weakened_policy(),
    )
    assert not report.result.any()
    parties = sorted(uploads)
    for size in range(1, len(parties)):
        for subset in itertools.combinations(parties, size):
            partial = np.zeros(64, dtype=np.uint32)
            for party in subset:
                partial += uploads[party].vector
            assert np.count_nonzero(partial) > 60, subset
    total = np.zeros(64, dtype=np.uint32)
    for party in parties:
        total += uploads[party].vector
    assert total.any()  # the self masks still hide the full sum until the seeds are rebuilt
