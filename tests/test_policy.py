"""The client policy object and its ledger lines (the attacks it stops are in tests/attacks/)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from fedprivacy.accounting import Ledger, PrivacyEvent, cap_event, parse_ledger, psu_attempt_event, refusal_event, replay
from fedprivacy.accounting.events import MECHANISM_DOUBLE_RR
from fedprivacy.errors import DecodeError, InvalidParameters, PolicyViolation, RemoteProtocolError
from fedprivacy.hazmat.field import Modulus
from fedprivacy.ldp import RRParameters
from fedprivacy.policy import ClientPolicy, weakened_policy
from fedprivacy.secagg import Adversary, ClientRowPlan, SecAggClient, SecAggConfig, minimum_threshold

SESSION = b"fedprivacy policy tests session!"


def test_defaults_are_the_safe_ones():
    policy = ClientPolicy()
    assert policy.adversary is Adversary.SEMI_MALICIOUS and policy.min_choosers == 2
    assert policy.min_parties == policy.min_psu_cohort == 3 and policy.max_psu_attempts == 3
    assert policy.rr_parameters == RRParameters.preset(2) and math.isinf(policy.epsilon_cap)
    assert not policy.allow_insecure
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.min_choosers = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "changes",
    [
        {"corrupt_fraction": 1.0}, {"corrupt_fraction": float("nan")}, {"min_parties": 1}, {"min_parties": True},
        {"max_allocation_bytes": 0}, {"max_psu_attempts": 0}, {"max_psu_attempts": 65}, {"min_psu_cohort": 1},
        {"min_choosers": 0}, {"min_choosers": 1}, {"epsilon_cap": -1.0}, {"allow_insecure": 1},
        {"rr_parameters": "CPP2"}, {"adversary": "trusting"}, {"rr_parameters": RRParameters.preset(1)},
    ],
)
def test_invalid_knobs_are_refused(changes):
    with pytest.raises(InvalidParameters):
        ClientPolicy(**changes)
    with pytest.raises(InvalidParameters):
        ClientPolicy().replace(**changes)


def test_suggestions_only_ever_add_privacy():
    policy = ClientPolicy()
    assert policy.accept_rr(None) == RRParameters.preset(2)
    assert policy.accept_rr(RRParameters.preset(4)) == RRParameters.preset(4)
    with pytest.raises(PolicyViolation) as info:
        policy.accept_rr(RRParameters.from_epsilons(4.0))
    assert info.value.knob == "rr_parameters" and isinstance(info.value, RemoteProtocolError)
    assert ClientPolicy(epsilon_cap=2.0).accept_cap(5.0) == 2.0 and ClientPolicy(epsilon_cap=2.0).accept_cap(1.0) == 1.0


def test_the_secure_sum_checks_parties_threshold_and_bytes_at_construction():
    small = SecAggConfig((1, 2), 4, Modulus.U32, 1, 2, SESSION)
    with pytest.raises(PolicyViolation, match="min_parties"):
        SecAggClient(small, 1)
    assert SecAggClient(small, 1, policy=ClientPolicy(min_parties=2)).stage.value == "created"
    big = SecAggConfig(tuple(range(1, 6)), 1 << 20, Modulus.U64, 4, 4, SESSION)
    with pytest.raises(PolicyViolation, match="max_allocation_bytes"):
        SecAggClient(big, 1, policy=ClientPolicy(max_allocation_bytes=(8 << 20) - 1))
    rows = SecAggConfig(tuple(range(1, 6)), 8, Modulus.U64, 4, 4, SESSION)
    plan = ClientRowPlan(1, 4, [1, 2], {2: [1, 2]})  # the plan's input (2 x 4 words), not the config's dim
    SecAggClient(rows, 1, row_plan=plan, policy=ClientPolicy(max_allocation_bytes=64))
    with pytest.raises(PolicyViolation):
        SecAggClient(rows, 1, row_plan=plan, policy=ClientPolicy(max_allocation_bytes=63))


def test_minimum_threshold_examples():
    assert minimum_threshold(10, 4, 0.05, Adversary.CURIOUS) == 2
    assert minimum_threshold(10, 4, 0.05, Adversary.SEMI_MALICIOUS) == 3
    assert minimum_threshold(10, 9, 0.05, Adversary.SEMI_MALICIOUS) == 6  # (10 + 1) // 2 + 1
    assert minimum_threshold(4, 3, 0.05, "semi-malicious") == 3
    assert weakened_policy().minimum_threshold(10, 9) == 2
    with pytest.raises(InvalidParameters):
        minimum_threshold(10, 10)


def test_policy_lines_parse_back_and_a_cap_only_goes_down():
    ledger, header = Ledger.create("client-1", 5.0)
    lines = [header, cap_event(ledger, 3.0), psu_attempt_event(ledger, 7, 0), psu_attempt_event(ledger, 7, 1),
             refusal_event(ledger, 7, "policy: too many attempts")]
    assert cap_event(ledger, 4.0) is None and cap_event(ledger, 3.0) is None  # not lower: no line
    parsed = parse_ledger(lines)
    budget = replay(parsed)
    assert budget.cap == 3.0 and budget.psu_attempts == {7: 2} and budget.refusals == 1
    assert parsed.events[-1].parameters == {"reason": "policy: too many attempts"}


@pytest.mark.parametrize("parameters", [{}, {"epsilon_cap": "-1"}, {"epsilon_cap": "x"}])
def test_a_malformed_cap_line_is_refused(parameters):
    data = PrivacyEvent("client-1", 0, "cap", MECHANISM_DOUBLE_RR, parameters).to_dict()
    with pytest.raises(DecodeError):
        PrivacyEvent.from_dict(data)


def test_a_malformed_attempt_line_is_refused():
    data = PrivacyEvent("client-1", 0, "psu-attempt", MECHANISM_DOUBLE_RR, {"attempt": "-1"}).to_dict()
    with pytest.raises(DecodeError):
        PrivacyEvent.from_dict(data)
