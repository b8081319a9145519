"""The cut link: the server drops the routed shares of the rows' sum between the only two choosers u
and v of a row (and leaves each out of the other's unmasking request). Neither then masks that row with
the other, so once the server removes their self masks (it is entitled to: both are alive) it reads each
one's block of that row -- count-weighted update and count -- in the clear, while every client ends
"completed". The rows' shares are routed with the PSU's, before any plan exists, so the server picks
the pair from a rehearsal of the same round (the clients' randomness is replayed): the strongest form of
the attack, a server that knows in advance which two clients will be a row's only choosers.

The real client re-checks ``min_choosers`` when it masks, against the peers whose shares it really
holds: the row goes up as zeros (count 0), and the server learns nothing about u or v from it.
"""

from __future__ import annotations

import numpy as np
import pytest

from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.ldp import RRParameters
from fedprivacy.policy import ClientPolicy, weakened_policy
from fedprivacy.secagg import Quantizer, SecAggClient
from fedprivacy.secagg.messages import RoutedShares, UnmaskRequest
from fedprivacy.submodel.client import DeviceState
from fedprivacy.submodel.messages import Phase, PhaseMessage, RowDownload
from fedprivacy.submodel.settings import RoundSettings
from fedprivacy.submodel.stages import RoundClientStage

from .harness import SubmodelRoundAttack, strip_row_self_mask
from .workload import WIDTH, FixedSetClient, TinyModel, scripted_count, scripted_delta

N = 10


class CutLink:
    """Finds a planned row with exactly two choosers from the row downloads (rehearsal), or cuts the
    link of a pair found so."""

    def __init__(self, target: tuple[int, int, int] | None = None) -> None:
        self.downloads: dict[int, RowDownload] = {}
        self.rehearsal = target is None
        self.target: tuple[int, int, int] | None = target  # (u, v, row)

    def __call__(self, recipient: int, message: object) -> list:
        if isinstance(message, RowDownload):
            self.downloads[recipient] = message
            if self.rehearsal and self.target is None:
                real = message.plan.rows.shape[0] - message.dense_rows
                partners: dict[int, list[int]] = {}
                for peer, positions in message.plan.sharing():
                    for position in positions[positions < real].tolist():
                        partners.setdefault(position, []).append(peer)
                for position, peers in sorted(partners.items()):
                    if len(peers) == 1:
                        self.target = (recipient, peers[0], int(message.plan.rows[position]))
                        break
            return [message]
        if self.rehearsal or not (isinstance(message, PhaseMessage) and message.phase is Phase.ROWS):
            return [message]
        assert self.target is not None
        u, v, _ = self.target
        inner = message.payload
        other = {u: v, v: u}.get(recipient)
        if other is None:
            return [message]
        if isinstance(inner, RoutedShares):
            inner = RoutedShares(recipient, tuple((s, c) for s, c in inner.ciphertexts if s != other))
        elif isinstance(inner, UnmaskRequest):
            inner = UnmaskRequest(recipient, tuple(p for p in inner.alive_ids if p != other),
                                  tuple(p for p in inner.dropped_ids if p != other))
        return [PhaseMessage(message.phase, message.attempt, inner)]


def _attack(policy: ClientPolicy):
    settings = RoundSettings(universe=500, max_set_size=12)

    def run(cut: CutLink):
        states = {p: DeviceState.new(FixedSetClient(p), RRParameters.preset(2), policy=policy) for p in range(1, N + 1)}
        attack = SubmodelRoundAttack(states, TinyModel(), settings, tamper=cut,
                                     random_source=lambda p: DeterministicRandomness(f"cut{p}"))
        attack.run()
        return attack

    rehearsal = CutLink()
    run(rehearsal)
    assert rehearsal.target is not None
    cut = CutLink(rehearsal.target)
    attack = run(cut)
    u, v, row = cut.target
    for party in (u, v):  # the replayed round planned the same row for the same two choosers
        assert np.array_equal(cut.downloads[party].plan.rows, rehearsal.downloads[party].plan.rows)
    return attack, cut, settings


def _what_the_server_reads(attack, cut, settings, party):
    download = cut.downloads[party]
    config, plan = download.config, download.plan
    blocks = strip_row_self_mask(config, attack.secagg_sent(Phase.ROWS), party, plan.rows, plan.width)
    assert blocks is not None  # the party is alive: the server gets its seed shares, as the protocol says
    position = int(np.searchsorted(plan.rows, cut.target[2]))
    quantizer = Quantizer(settings.modulus, settings.clip, config.clients, max_weight=float(settings.max_samples))
    sums, counts = quantizer.decode_rows(blocks[position:position + 1])
    return sums[0], float(counts[0])


def _truth(party: int, row: int):
    if row not in set(FixedSetClient(party).index_set().tolist()):
        return np.zeros(WIDTH), 0.0
    count = scripted_count(party, row)
    return count * scripted_delta(party, row), float(count)


def test_cutting_the_link_exposes_both_choosers_of_a_weakened_client(monkeypatch):
    monkeypatch.setattr(SecAggClient, "_zero_thin_rows", lambda self, vector: None)  # no re-check at masking
    attack, cut, settings = _attack(weakened_policy())
    assert all(c.stage is RoundClientStage.COMPLETED for c in attack.clients.values())  # nobody noticed
    u, v, row = cut.target
    for party in (u, v):
        sums, count = _what_the_server_reads(attack, cut, settings, party)
        expected_sums, expected_count = _truth(party, row)
        assert count == expected_count  # membership of the row in S_party, and its count
        assert np.allclose(sums, expected_sums, atol=1e-6)  # and its update, exactly up to quantization


def test_the_real_client_uploads_the_cut_row_as_zero():
    attack, cut, settings = _attack(ClientPolicy())
    u, v, row = cut.target
    for party in (u, v):
        sums, count = _what_the_server_reads(attack, cut, settings, party)
        assert count == 0.0 and not sums.any()  # nothing about the party
        assert attack.clients[party].stage is RoundClientStage.COMPLETED
        assert attack.clients[party].error is None


@pytest.mark.parametrize("floor", [2, 3])
def test_the_floor_at_masking_time_is_the_larger_of_the_servers_and_the_clients(floor):
    from fedprivacy.hazmat.field import Modulus
    from fedprivacy.secagg import ClientRowPlan, SecAggConfig

    config = SecAggConfig((1, 2, 3, 4), 8, Modulus.U64, 3, 3, b"attack suite: masking-time floor")
    plan = ClientRowPlan(1, 2, [10, 11, 12, 13], {2: [10, 11, 12], 3: [11, 12], 4: [12]})
    client = SecAggClient(config, 1, row_plan=plan, min_choosers=floor)
    client._pair_mask_keys = {2: b"k" * 16, 3: b"k" * 16}  # it holds shares of 2 and 3, not of 4
    vector = np.ones(8, dtype=np.uint64)
    client._zero_thin_rows(vector)
    partners = np.array([1, 2, 2, 0])  # peers it really masks each row with (4's link to row 12 is gone)
    assert np.array_equal((vector.reshape(4, 2) == 0).all(axis=1), partners < floor - 1)
    assert client.rows_zeroed == int((partners < floor - 1).sum())
