"""A tiny first PSU table to force reruns (protocols/submodel/spec.md, "First PSU table"; protocols/psu/spec.md
§7): the first table's bound is the server's choice (any bound from 1 to the ceiling), so a malicious server
can pick one too small to peel the union -- bound 1, 260 cells -- and get a rerun it can present as an honest one. It
then reruns at the ceiling, each time over a cohort with one more client "dropped", and keeps every
union: differencing material. It gains nothing it could not get by claiming a decode failure (the
client cannot check a decode), and the client's attempt limit per round index bounds both: against the
real client at most ``max_psu_attempts`` (3) summed sketches per round index; against a client without
the limit, as many as the server asks for."""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from fedprivacy.errors import PolicyViolation
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.ldp import RRParameters
from fedprivacy.policy import ClientPolicy, weakened_policy
from fedprivacy.psu.iblt import peel
from fedprivacy.psu.params import PSUParameters
from fedprivacy.psu.protocol import UnionDecodeFailure
from fedprivacy.submodel.client import DeviceState
from fedprivacy.submodel.server import SubmodelRoundServer
from fedprivacy.submodel.settings import RoundSettings

from .harness import SubmodelRoundAttack
from .workload import FixedSetClient, TinyModel

N = 10
ASKED = 8  # attempts the server asks for (its public max_psu_attempts)
SETTINGS = RoundSettings(universe=500, max_set_size=12, max_psu_attempts=ASKED)


class TinyFirstTableServer(SubmodelRoundServer):
    """The honest server's logic with three changes: a first table of bound 1 (it cannot peel the
    union), every rerun at the ceiling over the previous cohort less one more client (2, 3, ...: a
    "dropout"), and every summed table decoded for itself and then reported as a decode failure,
    until its own last attempt. ``learned`` holds what each summed table gave it (None: no union)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, psu_first_bound=1, **kwargs)
        self.learned: list[tuple[int, frozenset[int], frozenset[int] | None]] = []  # (bound, cohort, union)

    def _start_psu(self, parties):
        if self._psu_attempts:  # a rerun: one more client left out
            parties = tuple(p for p in parties if p != self._psu_attempts + 1)
        return super()._start_psu(parties)

    def _next_psu_params(self, failure):
        params = self._psu_params
        if self._psu_attempts >= ASKED:
            return None
        return PSUParameters(params.universe, self.psu_ceiling, params.session_id, params.attempt + 1)


def _lying_decoder(server_of):
    class LyingDecoder:
        """What the server runs instead of PSUServer: it keeps each table's union, and claims failure."""

        def __init__(self, params: PSUParameters) -> None:
            self.params = params

        def decode(self, summed: np.ndarray) -> np.ndarray:
            server = server_of()
            result = peel(self.params, summed)
            union = frozenset(result.ids.tolist()) if result.success else None
            server.learned.append((self.params.union_bound, frozenset(server._psu.input_ids), union))
            raise UnionDecodeFailure(int(result.ids.shape[0]), result.residual_cells, result.estimated_union)

    return LyingDecoder


def _attack(policy: ClientPolicy, monkeypatch) -> SubmodelRoundAttack:
    import fedprivacy.submodel.server as server_module

    states = {p: DeviceState.new(FixedSetClient(p), RRParameters.preset(2), policy=policy) for p in range(1, N + 1)}
    attack = SubmodelRoundAttack(states, TinyModel(), SETTINGS, 3, server_class=TinyFirstTableServer,
                                 random_source=lambda p: DeterministicRandomness(f"tiny-first-{p}"))
    monkeypatch.setattr(server_module, "PSUServer", _lying_decoder(lambda: attack.server))
    attack.run()
    return attack


def _only_held_by(party: int, cohort: frozenset[int]) -> set[int]:
    others = set().union(*(set(FixedSetClient(p).index_set().tolist()) for p in cohort if p != party))
    return set(FixedSetClient(party).index_set().tolist()) - others


def test_a_client_without_the_attempt_limit_gives_a_tiny_first_table_server_a_union_per_cohort(monkeypatch):
    attack = _attack(weakened_policy(), monkeypatch)
    learned = attack.server.learned
    assert len(learned) == ASKED  # eight summed tables for one round index, far above the limit of 3
    assert learned[0][0] == 1  # the tiny first table (it peels little or nothing; failure is claimed anyway)
    unions = [(cohort, union) for _, cohort, union in learned[1:]]
    assert all(union is not None for _, union in unions)  # seven unions, at the ceiling
    for (cohort, union), (smaller, less) in pairwise(unions):
        (left_out,) = cohort - smaller
        assert union - less == _only_held_by(left_out, cohort)  # each difference: a client's own ids
    assert sum(len(union - less) for (_, union), (_, less) in pairwise(unions)) > 0


def test_the_real_client_gives_it_at_most_max_psu_attempts_tables_per_round_index(monkeypatch):
    attack = _attack(ClientPolicy(), monkeypatch)
    learned = attack.server.learned
    assert len(learned) <= ClientPolicy().max_psu_attempts == 3
    assert learned[0][0] == 1  # the forced failure used up one of them
    assert attack.aborted is not None  # the fourth attempt found no client
    refusals = [e for e in attack.errors.values() if isinstance(e, PolicyViolation)]
    assert refusals and all(e.knob == "max_psu_attempts" for e in refusals)
    for party, state in attack.states.items():  # no ledger joined more than three attempts of round 3
        kinds = [e.kind for e in state.ledger.events if e.round_index == 3]
        assert kinds.count("psu-attempt") <= 3
        if party not in (2, 3, 4):  # asked for a fourth attempt (2, 3 and 4 were left out): refused, on the record
            assert kinds == ["psu-attempt"] * 3 + ["refusal"]
