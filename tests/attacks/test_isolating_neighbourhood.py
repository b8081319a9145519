"""Isolating a victim on a sparse rows' graph: the server picks the victim's partners.

On a sparse rows' secure sum (protocols/submodel/spec.md, "Sparse rows") a chooser masks a row with its
graph neighbours that chose it, and only they hold its shares. The graph comes from the config digest,
so the server picks it through the session id and the degree: with a degree of 2 it grinds session ids
(about C(n - 1, 2) tries) until the victim's two neighbours are the two clients colluding with it.
Those report every id of the union, so they co-choose every row of the victim and are its only
partners; they hand the server their pair keys with the victim, and the ordinary unmasking of a live
party gives the server the victim's self-mask seed from the same two holders. Every block the victim
uploads -- each reported row's count-weighted update and count, i.e. which reported rows it really
holds -- is then in the clear, with no dropout and nothing any client can see going wrong.

The real client derives the graph from the config and accepts a sparse degree only if a row with
``row_survivor_fraction`` x n honest surviving choosers stays connected except with probability
2^-40 (claim submodel/2): the degree-2 round start is refused before any key leaves it. At the degree
the policy accepts (here 6 of 19) two colluders can no longer fill a neighbourhood, whatever the session.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from fedprivacy.errors import PolicyViolation
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.ldp import RRParameters
from fedprivacy.policy import ClientPolicy
from fedprivacy.secagg import Quantizer, SecAggConfig
from fedprivacy.secagg.graph import neighbourhood
from fedprivacy.secagg.rowgraph import row_graph_degree, row_graph_survivors
from fedprivacy.secagg.rows import ClientRowPlan, row_keystream
from fedprivacy.submodel import server as server_module
from fedprivacy.submodel.client import DeviceState
from fedprivacy.submodel.messages import Phase, RowDownload
from fedprivacy.submodel.settings import RoundSettings
from fedprivacy.submodel.stages import RoundClientStage

from . import harness
from .harness import SubmodelRoundAttack, strip_row_self_mask
from .workload import WIDTH, FixedSetClient, TinyModel, scripted_count, scripted_delta

N = 20
VICTIM = 7
COLLUDERS = (3, 15)
SETTINGS = RoundSettings(universe=500, max_set_size=12, sparse_rows_above=10, row_survivor_fraction=0.8)


class IsolatingServer(server_module.SubmodelRoundServer):
    """Asks for a degree-2 rows' graph (the honest rule gives 6 for these settings)."""

    def _rows_degree(self) -> int | None:
        return 2


def _grinding_create(real_create):
    def create(party_ids, dim, modulus, **kwargs):
        if kwargs.get("neighbours") != 2:  # the PSU's sum: as usual
            return real_create(party_ids, dim, modulus, **kwargs)
        for attempt in range(100_000):  # the server picks the session id: grind it
            config = SecAggConfig(tuple(sorted(party_ids)), dim, modulus, 2, 2, b"ground session %08d" % attempt,
                                  kwargs.get("round_index", 0))
            if neighbourhood(config, VICTIM) == frozenset(COLLUDERS):
                return config
        raise AssertionError("no session isolates the victim")

    return create


def _attack(policy: ClientPolicy, monkeypatch):
    revealed: dict[int, dict[int, bytes]] = {}  # colluder -> its pair keys (handed to the server)
    real_mask = ClientRowPlan.mask

    def mask(self, vector, self_key, pair_keys, modulus):
        if self.party_id in COLLUDERS:
            revealed[self.party_id] = dict(pair_keys)
        return real_mask(self, vector, self_key, pair_keys, modulus)

    monkeypatch.setattr(ClientRowPlan, "mask", mask)
    monkeypatch.setattr(server_module, "SecAggConfig", types.SimpleNamespace(create=_grinding_create(SecAggConfig.create)))
    monkeypatch.setattr(harness, "SubmodelRoundServer", IsolatingServer)
    everything = RRParameters("1", "1", "1", "1")  # the colluders report the whole union
    states = {p: DeviceState.new(FixedSetClient(p), everything if p in COLLUDERS else RRParameters.preset(2),
                                 policy=policy) for p in range(1, N + 1)}
    attack = SubmodelRoundAttack(states, TinyModel(), SETTINGS, random_source=lambda p: DeterministicRandomness(f"iso{p}"))
    attack.run()
    return attack, revealed


def _what_the_server_reads(attack, revealed):
    download = next(m for m in attack.received[VICTIM] if isinstance(m, RowDownload))
    config, plan = download.config, download.plan
    blocks = strip_row_self_mask(config, attack.secagg_sent(Phase.ROWS), VICTIM, plan.rows, plan.width)
    assert blocks is not None  # the victim is alive: its neighbours hand over its seed shares
    for peer, positions in plan.sharing():
        assert peer in COLLUDERS  # the victim's only partners
        stream = row_keystream(revealed[peer][VICTIM], plan.rows[positions], plan.width, config.modulus)
        if VICTIM < peer:  # the victim subtracted this pair's mask: add it back
            blocks[positions] += stream
        else:
            blocks[positions] -= stream
    real = plan.rows.shape[0] - download.dense_rows
    quantizer = Quantizer(SETTINGS.modulus, SETTINGS.clip, config.clients, max_weight=float(SETTINGS.max_samples))
    sums, counts = quantizer.decode_rows(blocks[:real])
    return plan.rows[:real], sums, counts


def test_a_server_that_picks_the_neighbourhood_reads_a_weakened_clients_rows(monkeypatch):
    weakened = ClientPolicy(row_survivor_fraction=0.0, allow_insecure=True)  # the default, without the degree floor
    attack, revealed = _attack(weakened, monkeypatch)
    assert attack.clients[VICTIM].stage is RoundClientStage.COMPLETED and not attack.errors  # nobody noticed
    rows, sums, counts = _what_the_server_reads(attack, revealed)
    held = set(FixedSetClient(VICTIM).index_set().tolist())
    assert rows.size and any(int(r) in held for r in rows)
    for row, block, count in zip(rows.tolist(), sums, counts):
        expected_count = scripted_count(VICTIM, row) if row in held else 0
        assert count == expected_count  # which reported rows it holds, and its counts
        expected = expected_count * scripted_delta(VICTIM, row) if row in held else np.zeros(WIDTH)
        assert np.allclose(block, expected, atol=1e-6)  # and its updates, up to quantization


def test_the_real_client_refuses_the_degree_and_the_accepted_degree_cannot_be_filled(monkeypatch):
    attack, _ = _attack(ClientPolicy(row_survivor_fraction=0.8), monkeypatch)
    assert isinstance(attack.errors.get(VICTIM), PolicyViolation)
    assert attack.errors[VICTIM].knob == "row_survivor_fraction"
    assert not attack.secagg_sent(Phase.ROWS).get(VICTIM)  # no rows' key, share or upload left it
    accepted = row_graph_degree(N, row_graph_survivors(N, 0.8))
    assert accepted == 6 and accepted > len(COLLUDERS)  # a neighbourhood now always holds an honest client


@pytest.mark.parametrize("fraction", [0.05, 0.8])
def test_the_honest_servers_degree_passes_the_policy_it_was_sized_for(fraction):
    from fedprivacy.secagg.rowgraph import ROW_SECURITY_BITS, log_disconnection_bound

    for n in (20, 200, 2000, 10_000):
        k = row_graph_degree(n, row_graph_survivors(n, fraction))
        if k < n - 1:
            assert log_disconnection_bound(n, k, row_graph_survivors(n, fraction)) < -ROW_SECURITY_BITS * np.log(2)
