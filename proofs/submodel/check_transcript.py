"""Check for claim submodel/1 (see claim-1-transcript.md)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.ldp import RRParameters
from fedprivacy.psu import PSUParameters, encode_set
from fedprivacy.secagg import SecAggStep
from fedprivacy.secagg.messages import AdvertiseKeys, MaskedInput, ShareKeys, UnmaskResponse
from fedprivacy.submodel.demo import init_model, synthetic_workload
from fedprivacy.submodel.messages import PhaseMessage, RandomizedSetReport, SitOut, decode_submodel_message
from fedprivacy.submodel.reference import ReferenceModel, ReferenceTrainer
from fedprivacy.submodel.client import DeviceState
from fedprivacy.submodel.engine import RoundDrops, run_round
from fedprivacy.submodel.settings import RoundSettings


def _recorded_round():
    workload = synthetic_workload(clients=12, universe=3000, items_per_user=80, seed=5)
    states = {c.client_id: DeviceState.new(ReferenceTrainer(c), RRParameters.preset(2)) for c in workload.clients}
    server = ReferenceModel(*init_model(np.arange(3000, dtype=np.uint64), 6, seed=1))
    transcript = []
    outcome = run_round(
        states, server, RoundSettings(universe=3000, dropout_fraction=0.25, max_set_size=80), 0,
        RoundDrops(psu={3: SecAggStep.INPUT}, upload={4: SecAggStep.INPUT}),
        observer=lambda session, sender, recipient, data: transcript.append((session, sender, recipient, data)),
        random_source=lambda p: DeterministicRandomness(f"transcript-{p}"),
    )
    return workload, outcome, transcript


def test_the_server_receives_only_masked_data_and_randomized_sets():
    workload, outcome, transcript = _recorded_round()
    real = {c.client_id: np.unique(c.train_items) for c in workload.clients}
    union = np.unique(np.concatenate([ids for party, ids in real.items() if party != 3]))  # 3 missed the PSU
    received = [(session, sender, data) for session, sender, recipient, data in transcript if recipient == 0]
    assert received and all(sender != 0 for _, sender, _ in received)
    kinds = defaultdict(int)
    released = defaultdict(lambda: defaultdict(set))  # session -> owner -> {"seed", "key"}
    for session, sender, data in received:
        if session == "report":
            report = decode_submodel_message(data)
            assert isinstance(report, RandomizedSetReport) and report.sender == sender
            assert not np.array_equal(report.ids, real[sender])
            assert np.isin(report.ids, union).all()
            kinds["report"] += 1
            continue
        envelope = decode_submodel_message(data)
        if isinstance(envelope, SitOut):
            kinds["sit-out"] += 1
            continue
        assert isinstance(envelope, PhaseMessage) and envelope.sender == sender, type(envelope)
        assert envelope.phase.name.lower() == session
        message = envelope.payload
        assert isinstance(message, (AdvertiseKeys, ShareKeys, MaskedInput, UnmaskResponse)), type(message)
        kinds[type(message).__name__] += 1
        if isinstance(message, UnmaskResponse):
            for owner, _ in message.seed_shares:
                released[session][owner].add("seed")
            for owner, _ in message.key_shares:
                released[session][owner].add("key")
        if isinstance(message, MaskedInput):
            zero_fraction = float(np.mean(message.vector == 0)) if message.vector.size else 0.0
            assert zero_fraction < 0.01, (session, sender, zero_fraction)
            if session == "psu":
                params = PSUParameters(3000, 12 * 80, b"any session id for a plain sketch")
                plain = encode_set(params, real[sender])
                assert float(np.mean(plain == 0)) > 0.75  # what an unmasked sketch would look like
    assert all(len(kinds_released) == 1 for per in released.values() for kinds_released in per.values())
    assert kinds["report"] == len(outcome.chosen) and kinds["MaskedInput"] > 0 and kinds["UnmaskResponse"] > 0


def test_uploads_cover_exactly_the_planned_rows_and_no_thin_row():
    _, outcome, transcript = _recorded_round()
    planned = set(outcome.planned_rows.tolist())
    counts = defaultdict(int)
    for rows in outcome.chosen.values():
        for row in rows.tolist():
            counts[row] += 1
    assert all(counts[row] >= 2 for row in planned)  # min_choosers = 2
    envelopes = [(sender, decode_submodel_message(data)) for session, sender, recipient, data in transcript
                 if session == "rows" and recipient == 0]
    uploads = {sender: e.payload for sender, e in envelopes if isinstance(e, PhaseMessage) and isinstance(e.payload, MaskedInput)}
    assert uploads
    row_width = 6 + 1  # embedding and bias; the dense head (6 weights + bias) fits in one such row
    for sender, message in uploads.items():
        mine = np.intersect1d(outcome.chosen[sender], outcome.planned_rows)
        assert message.vector.shape[0] == (mine.shape[0] + 1) * (row_width + 1)  # + the count column
