"""The thin dense plan: the server gives a victim a plan whose rows -- the dense pseudo-rows included --
are shared with two peers only, and withholds those two peers' own row downloads, so they are genuine
dropouts of the rows' sum. The ordinary unmasking then hands the server the victim's self-mask seed
(it is alive) and both peers' mask keys (they dropped): every mask on the victim's upload comes off,
its dense update and, through the counts, which of its reported rows it really holds. No colluder is
needed, and malicious mode does not help (the survivor set it signs is the true one).

The real client requires the dense pseudo-rows to be shared with every party whose rows' shares it
holds, so the server cannot isolate its dense block; it aborts on the thin plan and uploads nothing.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fedprivacy.hazmat.kex import KeyAgreement
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.ldp import RRParameters
from fedprivacy.secagg import Adversary, ClientRowPlan, Quantizer, make_identities
from fedprivacy.secagg.masking import pair_mask_key
from fedprivacy.secagg.messages import AdvertiseKeys
from fedprivacy.secagg.rows import row_keystream
from fedprivacy.submodel.client import DeviceState, SubmodelRoundClient
from fedprivacy.submodel.messages import Phase, RowDownload
from fedprivacy.submodel.server import SubmodelRoundServer
from fedprivacy.submodel.settings import RoundSettings
from fedprivacy.submodel.stages import RoundClientStage

from . import harness
from .harness import SubmodelRoundAttack, strip_row_self_mask, victim_shares
from .workload import FixedSetClient, TinyModel, scripted_count

N, VICTIM, B, C = 20, 1, 2, 3
SECRET_DENSE = np.array([0.123, -0.045, 0.067])


class Victim(FixedSetClient):
    def train(self, row_ids, rows, dense):  # noqa: ANN001, ANN201
        result = super().train(row_ids, rows, dense)
        return dataclasses.replace(result, dense_delta=SECRET_DENSE.copy())


class WeakDensePlanClient(SubmodelRoundClient):
    """Accepts a plan whose dense pseudo-rows leave out parties it holds shares of (the check off)."""

    @staticmethod
    def _check_dense_partners(plan, real_count, dense_rows, holders) -> None:  # noqa: ANN001
        return None


def _thin_plan(downloads: dict[int, RowDownload]):  # noqa: ANN202
    def tamper(recipient: int, message: object) -> list:
        if isinstance(message, RowDownload):
            if recipient in (B, C):
                return []  # B and C never get their rows: dropouts of the rows' sum
            if recipient == VICTIM:
                plan = message.plan
                thin = ClientRowPlan(VICTIM, plan.width, plan.rows, {B: plan.rows, C: plan.rows})
                message = dataclasses.replace(message, plan=thin)
                downloads[recipient] = message
        return [message]

    return tamper


def _attack(client_class: type[SubmodelRoundClient], monkeypatch):  # noqa: ANN001, ANN202
    identities, trust = make_identities(range(1, N + 1), DeterministicRandomness("dense-plan identities"))
    monkeypatch.setattr(harness, "SubmodelRoundServer", lambda *a, **k: SubmodelRoundServer(*a, trust=trust, **k))
    settings = RoundSettings(universe=500, max_set_size=12, adversary=Adversary.MALICIOUS)
    states = {p: DeviceState.new(Victim(p) if p == VICTIM else FixedSetClient(p), RRParameters.preset(2),
                                 identity=identities[p], trust=trust) for p in range(1, N + 1)}
    downloads: dict[int, RowDownload] = {}
    attack = SubmodelRoundAttack(states, TinyModel(), settings, tamper=_thin_plan(downloads), client_class=client_class,
                                 random_source=lambda p: DeterministicRandomness(f"dense-plan {p}"))
    attack.run()
    return attack, settings, downloads


def _read_victim(attack, settings, download):  # noqa: ANN001, ANN202
    """The server's side: the victim's upload with its self mask and both dropped peers' masks removed."""
    config, plan = download.config, download.plan
    sent = attack.secagg_sent(Phase.ROWS)
    blocks = strip_row_self_mask(config, sent, VICTIM, plan.rows, plan.width)
    if blocks is None:
        return None
    public = {m.sender: m.mask_public_key for ms in sent.values() for m in ms if isinstance(m, AdvertiseKeys)}
    out = blocks.copy()
    for peer in (B, C):
        _, key_shares = victim_shares(sent, peer)
        private = harness._reconstruct(key_shares, config.threshold)
        key = pair_mask_key(config, KeyAgreement(private).agree(public[VICTIM]), peer, VICTIM)
        stream = row_keystream(key, plan.rows, plan.width, config.modulus)
        out = out + stream if VICTIM < peer else out - stream
    quantizer = Quantizer(settings.modulus, settings.clip, config.clients, max_weight=float(settings.max_samples))
    return quantizer.decode_rows(out.astype(blocks.dtype))


def test_a_thin_dense_plan_exposes_a_weakened_clients_upload(monkeypatch):
    attack, settings, downloads = _attack(WeakDensePlanClient, monkeypatch)
    assert attack.clients[VICTIM].stage is RoundClientStage.COMPLETED
    download = downloads[VICTIM]
    sums, counts = _read_victim(attack, settings, download)
    real = download.plan.rows.shape[0] - download.dense_rows
    weight = float(counts[-1])
    assert weight > 0
    np.testing.assert_allclose(sums[real:].reshape(-1)[: SECRET_DENSE.shape[0]] / weight, SECRET_DENSE, atol=1e-6)
    held = set(FixedSetClient(VICTIM).index_set().tolist())
    truth = [scripted_count(VICTIM, r) if r in held else 0 for r in download.plan.rows[:real].tolist()]
    assert np.allclose(counts[:real], truth)  # which reported rows it really holds: the randomized response undone


def test_the_real_client_refuses_a_thin_dense_plan(monkeypatch):
    attack, settings, downloads = _attack(SubmodelRoundClient, monkeypatch)
    victim = attack.clients[VICTIM]
    assert victim.stage is RoundClientStage.ABORTED
    assert "dense pseudo-rows" in str(victim.error)
    assert _read_victim(attack, settings, downloads[VICTIM]) is None  # it never uploaded


class UnboundedUnionClient(SubmodelRoundClient):
    """Takes any union below the universe, whatever the PSU table could have decoded (the bound off)."""

    def _union_limit(self) -> int:
        return 1 << 62


def _oversized_union(recipient: int, message: object) -> list:
    from fedprivacy.submodel.messages import UnionBroadcast

    if isinstance(message, UnionBroadcast):
        return [UnionBroadcast(message.round_index, np.arange(1 << 16, dtype=np.uint64))]
    return [message]


def _union_attack(client_class: type[SubmodelRoundClient]) -> SubmodelRoundAttack:
    settings = RoundSettings(universe=1 << 16, max_set_size=12)
    states = {p: DeviceState.new(FixedSetClient(p), RRParameters.preset(2)) for p in range(1, 11)}
    attack = SubmodelRoundAttack(states, TinyModel(), settings, tamper=_oversized_union, client_class=client_class,
                                 random_source=lambda p: DeterministicRandomness(f"union {p}"))
    attack.run()
    return attack


def test_an_oversized_union_makes_a_weakened_client_answer_over_all_of_it():
    attack = _union_attack(UnboundedUnionClient)
    client = attack.clients[1]
    assert client.chosen is not None and client.chosen.size > 120  # far more than any decodable union holds
    assert len(client.state.memo) > 120  # and its permanent memo grew to match


def test_the_real_client_refuses_a_union_larger_than_its_table_can_decode():
    """A union of 65,536 ids for a round whose parties hold at most 10 x 12 = 120: every client would
    run randomized response over all of them (and grow its permanent memo); the real client aborts."""
    attack = _union_attack(SubmodelRoundClient)
    for client in attack.clients.values():
        assert client.stage is RoundClientStage.ABORTED and "above the PSU table's bound" in str(client.error)
        assert client.chosen is None and len(client.state.memo) == 0
