"""Malicious mode inside a submodel round (protocols/secagg/spec.md §14, protocols/submodel/spec.md):
the PSU's sum and the per-row sums both run signed, with the consistency check, when the settings ask
for it; a client with an identity key refuses a round whose sums are not in malicious mode."""

from __future__ import annotations

import numpy as np
import pytest

from fedprivacy.errors import PolicyViolation, RoundAborted
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.ldp import RRParameters
from fedprivacy.secagg import Adversary, SecAggStep, consistency_quorum, make_identities
from fedprivacy.secagg.messages import KeyBroadcast, MessageType, UnmaskRequest
from fedprivacy.submodel.demo import init_model, synthetic_workload
from fedprivacy.submodel.messages import decode_submodel_message
from fedprivacy.submodel.reference import ReferenceModel, ReferenceTrainer
from fedprivacy.submodel.client import DeviceState
from fedprivacy.submodel.engine import RoundDrops, run_round
from fedprivacy.submodel.settings import RoundSettings


def _states(workload, identities=None, trust=None):
    return {
        c.client_id: DeviceState.new(
            ReferenceTrainer(c), RRParameters.preset(2),
            identity=None if identities is None else identities[c.client_id], trust=trust,
        )
        for c in workload.clients
    }


def _round(adversary, with_identities, drops=None, clients=12):
    workload = synthetic_workload(clients=clients, universe=3000, items_per_user=80, seed=3)
    identities, trust = make_identities([c.client_id for c in workload.clients], DeterministicRandomness("sub-mal/ids"))
    states = _states(workload, identities if with_identities else None, trust if with_identities else None)
    table, head = init_model(np.arange(3000, dtype=np.uint64), 6, seed=1)
    server = ReferenceModel(table, head)
    settings = RoundSettings(universe=3000, adversary=adversary, dropout_fraction=0.25)
    types: dict[str, set[int]] = {"psu": set(), "rows": set()}

    def observer(session, sender, recipient, data):
        if session in types:  # a PhaseMessage: header (7), phase, attempt, u32 length, then the secagg message
            types[session].add(data[13 + 6])

    outcome = run_round(states, server, settings, 0, drops, observer=observer,
                           random_source=lambda p: DeterministicRandomness(f"sub-mal/{p}"), trust=trust)
    return outcome, states, types


def test_a_malicious_mode_round_completes_with_signed_sums():
    drops = RoundDrops(psu={1: SecAggStep.UNMASK}, upload={3: SecAggStep.INPUT})
    outcome, states, types = _round(Adversary.MALICIOUS, with_identities=True, drops=drops)
    assert outcome.participants == 10 and not {1, 3} & outcome.contributors  # 1 vanished in the PSU, 3 before uploading
    # The rows' sum is set up with the PSU's first attempt, in malicious mode too; each sum's
    # consistency check adds its exchange to the 7 of a semi-malicious round.
    assert outcome.exchanges == 9
    assert all(s.policy.adversary is Adversary.MALICIOUS for s in states.values())
    for session in ("psu", "rows"):  # signed advertisements, the consistency check, signed unmasking requests
        assert {MessageType.SIGNED_ADVERTISE_KEYS, MessageType.CONSISTENCY_RESPONSE,
                MessageType.SIGNED_UNMASK_REQUEST} <= types[session]
        assert MessageType.ADVERTISE_KEYS not in types[session]
    # One signature over both sums' keys (secagg spec §14.8): the rows' key broadcast carries it with
    # the PSU keys, the PSU's first broadcast is unsigned (no PSU attempt was rerun here).
    assert MessageType.JOINT_KEY_BROADCAST in types["rows"] and MessageType.KEY_BROADCAST in types["psu"]
    assert not {MessageType.SIGNED_KEY_BROADCAST, MessageType.KEY_BROADCAST} & types["rows"]
    assert MessageType.SIGNED_KEY_BROADCAST not in types["psu"]


def test_each_client_checks_one_advertisement_signature_per_peer():
    """n = 12: every client checks 11 advertisement signatures (the rows' full graph, covering the PSU
    keys too), and on the rows' full graph exactly the quorum of consistency signatures."""
    checked: dict[tuple[str, int], list[int]] = {}
    workload = synthetic_workload(clients=12, universe=3000, items_per_user=80, seed=3)
    identities, trust = make_identities([c.client_id for c in workload.clients], DeterministicRandomness("sub-mal/ids"))
    states = _states(workload, identities, trust)
    table, head = init_model(np.arange(3000, dtype=np.uint64), 6, seed=1)
    settings = RoundSettings(universe=3000, adversary=Adversary.MALICIOUS, dropout_fraction=0.25)

    def observer(session, sender, recipient, data):
        if session not in ("psu", "rows") or sender != 0:
            return
        payload = decode_submodel_message(data).payload
        if isinstance(payload, KeyBroadcast) and payload.signed:
            checked.setdefault(("adverts", recipient), []).append(len(payload.peers))
        elif isinstance(payload, UnmaskRequest) and payload.signatures is not None:
            checked.setdefault((session, recipient), []).append(len(payload.signatures))

    outcome = run_round(states, ReferenceModel(table, head), settings, 0, None, observer=observer,
                           random_source=lambda p: DeterministicRandomness(f"sub-mal/{p}"), trust=trust)
    assert outcome.participants == 12
    parties = [c.client_id for c in workload.clients]
    assert all(checked[("adverts", p)] == [11] for p in parties)
    rows_quorum = {tuple(checked[("rows", p)]) for p in parties}
    assert rows_quorum == {(consistency_quorum(12, settings.corrupt_fraction),)}


def test_a_client_with_an_identity_refuses_a_round_that_is_not_malicious():
    with pytest.raises(RoundAborted):  # every client refuses the PSU's config before releasing anything
        _round(Adversary.SEMI_MALICIOUS, with_identities=True)
    workload = synthetic_workload(clients=4, universe=3000, items_per_user=80, seed=3)
    identities, trust = make_identities([c.client_id for c in workload.clients])
    state = _states(workload, identities, trust)[workload.clients[0].client_id]
    from fedprivacy.secagg import SecAggClient, SecAggConfig

    config = SecAggConfig.create([c.client_id for c in workload.clients], 8, full_graph=True)
    with pytest.raises(PolicyViolation, match="malicious"):
        SecAggClient(config, workload.clients[0].client_id, policy=state.policy)


def test_without_identities_the_default_round_is_unchanged():
    outcome, states, _ = _round(Adversary.SEMI_MALICIOUS, with_identities=False)
    assert outcome.participants == 12
    assert outcome.exchanges == 7
    assert all(s.policy.adversary is Adversary.SEMI_MALICIOUS for s in states.values())
