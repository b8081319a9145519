"""Equivocation at unmasking: the server tells some of a victim's share holders "the victim is alive"
and the others "the victim dropped", collects seed shares from the first and mask-key shares from the
second, and strips every mask off the victim's input.

Against a client that accepts curious-server thresholds (n = 10: k = 4, t = 2) it recovers the input
exactly -- inside a submodel round, the victim's exact real index set S_i from its PSU sketch. The
real client refuses that config before releasing anything, and with the semi-malicious threshold it
accepts (t = 3 of 4 holders) no split of the holders yields t shares of both kinds.
"""

from __future__ import annotations

import numpy as np
import pytest

from fedprivacy.errors import PolicyViolation
from fedprivacy.hazmat.field import Modulus
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.ldp import RRParameters
from fedprivacy.policy import ClientPolicy, weakened_policy
from fedprivacy.psu.protocol import PSUServer
from fedprivacy.secagg import Adversary, SecAggClient, SecAggConfig
from fedprivacy.submodel.client import DeviceState
from fedprivacy.submodel.messages import Phase, RoundStart
from fedprivacy.submodel.settings import RoundSettings

from .harness import ADVERSARY_MODES, SecureSumAttack, SubmodelRoundAttack, equivocate, strip_victim, victim_shares
from .workload import FixedSetClient, TinyModel

N = 10
VICTIM = 4
SESSION = b"attack suite: equivocation 00001"


def _config(adversary: Adversary) -> SecAggConfig:
    return SecAggConfig.create(range(1, N + 1), 6, Modulus.U64, adversary=adversary, session_id=SESSION)


def _inputs(config: SecAggConfig) -> dict[int, np.ndarray]:
    return {p: np.arange(config.dim, dtype=np.uint64) * np.uint64(1000) + np.uint64(p) for p in config.party_ids}


def _run(config: SecAggConfig, policy: ClientPolicy, told_alive_count: int, make_clients=None):
    clients = (
        make_clients(config, policy) if make_clients is not None else
        {p: SecAggClient(config, p, random_bytes=DeterministicRandomness(f"eq{p}"), policy=policy) for p in config.party_ids}
    )
    holders = sorted(clients[VICTIM].neighbours)
    attack = SecureSumAttack(config, clients, equivocate(VICTIM, set(holders[:told_alive_count])))
    attack.run(_inputs(config))
    return attack, holders


def test_curious_thresholds_are_what_the_issue_measured():
    assert (_config(Adversary.CURIOUS).neighbours, _config(Adversary.CURIOUS).threshold) == (4, 2)
    assert (_config(Adversary.SEMI_MALICIOUS).neighbours, _config(Adversary.SEMI_MALICIOUS).threshold) == (4, 3)


def test_equivocation_recovers_the_victims_input_from_a_weakened_client():
    config = _config(Adversary.CURIOUS)
    attack, holders = _run(config, weakened_policy(), told_alive_count=2)
    recovered = strip_victim(config, attack.sent, VICTIM, set(holders))
    assert recovered is not None and np.array_equal(recovered, _inputs(config)[VICTIM])  # the attack works


def test_the_real_client_refuses_curious_thresholds_before_releasing_anything():
    config = _config(Adversary.CURIOUS)
    with pytest.raises(PolicyViolation, match="threshold t=2"):
        SecAggClient(config, VICTIM)  # the constructor: no key, no share has left


@pytest.mark.parametrize("told_alive_count", range(0, 5))
def test_no_split_of_the_holders_defeats_the_semi_malicious_threshold(told_alive_count):
    config = _config(Adversary.SEMI_MALICIOUS)
    attack, holders = _run(config, ClientPolicy(), told_alive_count)
    seeds, keys = victim_shares(attack.sent, VICTIM)
    assert len(seeds) < config.threshold or len(keys) < config.threshold
    assert strip_victim(config, attack.sent, VICTIM, set(holders)) is None


@pytest.mark.parametrize("mode", sorted(ADVERSARY_MODES))
def test_equivocation_under_each_mode(mode):
    """The modes of :data:`ADVERSARY_MODES` (the malicious mode adds its own): with the mode's threshold,
    the real client's policy for the mode either refuses the config or every split fails."""
    spec = ADVERSARY_MODES[mode]
    config = _config(spec.adversary)
    if not spec.real_client_defeats_equivocation:
        with pytest.raises(PolicyViolation):
            SecAggClient(config, VICTIM, policy=ClientPolicy())
        return
    for alive in range(0, 5):
        attack, holders = _run(config, spec.client_policy, alive, spec.make_clients)
        assert strip_victim(config, attack.sent, VICTIM, set(holders)) is None


def test_every_split_is_bounded_by_the_threshold_bound():
    """The bound itself: with h holders, a corrupt, one kind per honest holder, the server gets at most
    A + a seed and B + a key shares with A + B <= h - a; t > (h + a) / 2 leaves one kind short."""
    policy = ClientPolicy()
    for n in range(3, 40):
        for k in [*range(2, n - 1, 2), n - 1]:
            t = policy.minimum_threshold(n, k)
            holders = n if k == n - 1 else k
            if k == n - 1:  # the full graph: the corrupt holders the policy assumes are tolerated
                assert 2 * t - holders > -(-policy.corrupt_fraction * n // 1)
            for a in range(0, 2 * t - holders):  # every corrupt count the threshold tolerates
                best = max(min(alive + a, holders - alive) for alive in range(holders - a + 1))
                assert best < t, (n, k, t, a)


# -- inside a submodel round: the victim's real index set ------------------------------------------


def _submodel_attack(settings: RoundSettings, policy: ClientPolicy, told_alive_count: int):
    states = {p: DeviceState.new(FixedSetClient(p), RRParameters.preset(2), policy=policy) for p in range(1, N + 1)}
    holders: set[int] = set()

    def tamper(recipient, message):
        if isinstance(message, RoundStart) and recipient == VICTIM:
            from fedprivacy.secagg.graph import neighbourhood

            holders.update(sorted(neighbourhood(message.psu_config, VICTIM)))
        inner = getattr(message, "payload", None)
        if inner is None or getattr(message, "phase", None) is not Phase.PSU:
            return [message]
        rewritten = equivocate(VICTIM, set(sorted(holders)[:told_alive_count]))(recipient, inner)
        return [type(message)(message.phase, message.attempt, m) for m in rewritten]

    attack = SubmodelRoundAttack(states, TinyModel(), settings, tamper=tamper,
                                 random_source=lambda p: DeterministicRandomness(f"sub-eq{p}"))
    attack.run()
    return attack, holders


def _recovered_set(attack, holders):
    start = next(m for m in attack.received[VICTIM] if isinstance(m, RoundStart))
    sketch = strip_victim(start.psu_config, attack.secagg_sent(Phase.PSU), VICTIM, holders)
    return None if sketch is None else PSUServer(start.psu_params).decode(sketch)


def test_inside_a_submodel_round_a_weakened_client_gives_its_exact_real_index_set_away():
    settings = RoundSettings(universe=500, max_set_size=12, adversary=Adversary.CURIOUS)
    attack, holders = _submodel_attack(settings, weakened_policy(), told_alive_count=2)
    recovered = _recovered_set(attack, holders)
    assert recovered is not None
    assert recovered.tolist() == sorted(FixedSetClient(VICTIM).index_set().tolist())  # S_i, exactly


def test_inside_a_submodel_round_the_real_client_refuses_curious_thresholds():
    settings = RoundSettings(universe=500, max_set_size=12, adversary=Adversary.CURIOUS)
    attack, holders = _submodel_attack(settings, ClientPolicy(), told_alive_count=2)
    assert all(isinstance(attack.errors[p], PolicyViolation) for p in range(1, N + 1))
    assert not any(attack.sent.values())  # nothing left any client
    assert _recovered_set(attack, holders) is None


@pytest.mark.parametrize("told_alive_count", [1, 2, 3])
def test_inside_a_submodel_round_semi_malicious_thresholds_defeat_it(told_alive_count):
    settings = RoundSettings(universe=500, max_set_size=12)  # the default: semi-malicious
    attack, holders = _submodel_attack(settings, ClientPolicy(), told_alive_count)
    start = next(m for m in attack.received[VICTIM] if isinstance(m, RoundStart))
    assert start.psu_config.threshold == 3 and len(holders) == 4
    assert _recovered_set(attack, holders) is None

