"""The secure submodel round (in process): equals plaintext FedSubAvg without randomization, learns with CPP2."""

from __future__ import annotations

import numpy as np
import pytest

from fedprivacy.ldp import RRParameters
from fedprivacy.secagg import DropStage
from fedprivacy.submodel import auc, init_model, plaintext_round, predict, synthetic_workload
from fedprivacy.adapters.interfaces import SubmodelClient, SubmodelServer
from fedprivacy.submodel.reference import ReferenceClient, ReferenceServer
from fedprivacy.submodel.secure import ClientState, RoundDrops, RoundSettings, secure_round


def _setup(clients=12, params=None, seed=3):
    workload = synthetic_workload(clients=clients, universe=3000, items_per_user=80, seed=seed)
    params = params or RRParameters.preset(2)
    states = {c.client_id: ClientState.new(ReferenceClient(c), params) for c in workload.clients}
    table, head = init_model(np.arange(3000, dtype=np.uint64), 6, seed=1)
    return workload, states, table, head


def test_without_randomization_the_secure_round_equals_plaintext_fedsubavg():
    exact = RRParameters("1", "0", "1", "0", allow_insecure=True)
    workload, states, table, head = _setup(params=exact)
    plain_table = {r: v.copy() for r, v in table.items()}
    settings = RoundSettings(universe=3000, min_choosers=1)
    server = ReferenceServer(table, head)
    assert isinstance(server, SubmodelServer) and isinstance(states[1].client, SubmodelClient)
    outcome = secure_round(states, server, settings, 0)
    secure_head = server.head
    plain_head = plaintext_round(workload.clients, plain_table, head)
    assert outcome.participants == 12 and outcome.thin_rows == 0
    worst = max(float(np.max(np.abs(table[r] - plain_table[r]))) for r in table)
    assert worst < 1e-9  # quantization step at this scale is ~1e-14 per summand
    assert np.allclose(secure_head.flat(), plain_head.flat(), atol=1e-9)


def test_cpp2_round_learns_and_charges_the_ledgers():
    workload, states, table, head = _setup(clients=20)
    settings = RoundSettings(universe=3000, dropout_fraction=0.25)
    drops = RoundDrops(psu={1: DropStage.INPUT}, after_psu=frozenset({2}), upload={3: DropStage.INPUT, 4: DropStage.UNMASK})
    server = ReferenceServer(table, head)
    outcome = secure_round(states, server, settings, 0, drops)
    scores, labels = zip(*[predict(c, server.table, server.head) for c in workload.clients])
    # Seeded: AUC 0.48 before, about 0.6 after one round; the bound leaves room for float differences.
    assert auc(np.concatenate(scores), np.concatenate(labels)) > 0.56
    assert outcome.participants == 17  # 1 missed the PSU, 2 left after it, 3 dropped before uploading; 4 counted
    assert outcome.epsilon_spent_max == pytest.approx(RRParameters.preset(2).epsilon_1, abs=1e-9)
    assert 1 not in outcome.contributors and 4 in outcome.contributors
    assert states[1].ledger.events == [] and len(states[5].ledger.events) == 1


def test_the_psu_table_is_sized_from_public_numbers_and_oversized_sets_are_refused():
    from fedprivacy.errors import InvalidParameters

    workload, states, table, head = _setup(clients=6)
    with pytest.raises(InvalidParameters, match="max_set_size"):
        secure_round(states, ReferenceServer(table, head), RoundSettings(universe=3000, max_set_size=10), 0)
    assert all(not s.ledger.events for s in states.values())  # nothing was released
