"""Cohort differencing (protocols/psu/spec.md and protocols/submodel/spec.md, "Cohort differencing"):
the union of a cohort minus the union of the same cohort without the victim is exactly the ids only the
victim holds. No single PSU reveals it; two do, whoever runs them. What the client bounds: PSU attempts
per round index (so one round index gives at most ``max_psu_attempts`` unions) and the cohort size (a
PSU over two parties is the other party's set outright). Across round indices the difference remains:
the client cannot tell a legitimate new cohort from a differencing one.
"""

from __future__ import annotations

from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.ldp import RRParameters
from fedprivacy.submodel.client import DeviceState
from fedprivacy.submodel.settings import RoundSettings

from .harness import SubmodelRoundAttack
from .workload import FixedSetClient, TinyModel

N = 10
VICTIM = 4


def _union(parties, round_index):
    states = {p: DeviceState.new(FixedSetClient(p), RRParameters.preset(2)) for p in parties}
    attack = SubmodelRoundAttack(states, TinyModel(), RoundSettings(universe=500, max_set_size=12), round_index,
                                 random_source=lambda p: DeterministicRandomness(f"diff{round_index}-{p}"))
    server = attack.run()
    return set(server.union.tolist())


def test_the_difference_of_two_unions_is_the_victims_own_ids():
    everyone = range(1, N + 1)
    all_union = _union(everyone, 1)
    rest_union = _union([p for p in everyone if p != VICTIM], 2)
    others = set().union(*(set(FixedSetClient(p).index_set().tolist()) for p in everyone if p != VICTIM))
    victim = set(FixedSetClient(VICTIM).index_set().tolist())
    assert all_union - rest_union == victim - others  # exactly the ids only the victim holds
    assert len(victim - others) == 6 and len(victim) == 10  # measured: 6 of its 10 ids (4 are also held by others)

