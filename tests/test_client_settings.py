"""One parser for the client's own settings: the command line and the Flower node config read the same
settings through :mod:`fedprivacy.client_settings`, with the same errors in each front end's spelling."""

from __future__ import annotations

import argparse
import math

import pytest

from fedprivacy.client_settings import (
    CLI_SETTINGS,
    FLOWER_SETTINGS,
    client_policy_from_settings,
    epsilon_cap_from_settings,
    epsilon_cap_with_suggestion,
    rr_parameters_from_client_settings,
    rr_parameters_with_suggestion,
)
from fedprivacy.cli.rr import client_settings
from fedprivacy.ddp.params import DDPPolicy
from fedprivacy.errors import InvalidParameters, PolicyViolation
from fedprivacy.ldp import RRParameters
from fedprivacy.policy import ClientPolicy
from fedprivacy.secagg.params import Adversary

# Bad settings (plain names) and the words of the error each gives (in the CLI's spelling).
BAD = [
    ({"cpp": 1}, "--cpp 1 gives epsilon_inf = infinity"),
    ({"cpp": 9}, "--cpp must be one of"),
    ({"epsilon": 710}, "--epsilon must be between 0 and"),
    ({"epsilon-1": 1}, "--epsilon-1 needs --epsilon"),
    ({"cpp": 3, "epsilon": 1}, "give only one of"),
    ({"p1": "3/4"}, "--p1, --p2, --p3, --p4 go together"),
    ({"epsilon-cap": -1}, "--epsilon-cap must be >= 0"),
    ({"epsilon-cap": "lots"}, "--epsilon-cap must be a number, got 'lots'"),
    ({"min-parties": 2.5}, "--min-parties must be an integer"),
    ({"allow-insecure": "yes"}, "--allow-insecure must be true or false"),
    ({"corrupt-fraction": 1.5}, "ClientPolicy.corrupt_fraction: must be in [0, 1)"),
    ({"min-choosers": 1}, "ClientPolicy.min_choosers = 1"),
    ({"ddp-colluders": "x"}, "--ddp-colluders must be an integer"),
]


@pytest.mark.parametrize(("settings", "words"), BAD)
def test_both_spellings_refuse_a_bad_setting_with_the_same_words(settings, words):
    for names in (CLI_SETTINGS, FLOWER_SETTINGS):
        with pytest.raises(InvalidParameters) as caught:
            client_policy_from_settings(settings, names)
        assert words.replace("--", names.prefix) in str(caught.value)


def test_the_settings_make_the_policy():
    policy = client_policy_from_settings(
        {"cpp": 4, "epsilon-cap": 3, "adversary": "curious", "corrupt-fraction": 0.1, "min-choosers": 3,
         "ddp-delta": 1e-6, "ddp-required": True}, FLOWER_SETTINGS)
    assert policy == ClientPolicy(rr_parameters=RRParameters.preset(4), epsilon_cap=3.0, adversary=Adversary.CURIOUS,
                                  corrupt_fraction=0.1, min_choosers=3, ddp=DDPPolicy(delta=1e-6, required=True))
    assert client_policy_from_settings({}, CLI_SETTINGS) == ClientPolicy()
    assert client_policy_from_settings({"cpp": 1, "allow-insecure": True}, CLI_SETTINGS).rr_parameters.p1 == 1


def test_a_flower_config_and_the_command_line_name_the_same_settings():
    node = {"fedprivacy-epsilon": 2.0, "fedprivacy-epsilon-1": "1", "fedprivacy-epsilon-cap": 5.0,
            "fedprivacy-state-dir": "/somewhere", "other-app-key": 1}
    assert FLOWER_SETTINGS.settings(node) == {"epsilon": 2.0, "epsilon-1": "1", "epsilon-cap": 5.0,
                                              "state-dir": "/somewhere"}
    args = argparse.Namespace(cpp=None, epsilon=2.0, epsilon_1=1.0, p1=None, p2=None, p3=None, p4=None,
                              allow_insecure=False, epsilon_cap=5.0)
    assert client_settings(args) == {"epsilon": 2.0, "epsilon-1": 1.0, "epsilon-cap": 5.0}
    assert client_policy_from_settings(client_settings(args), CLI_SETTINGS) == \
        client_policy_from_settings(FLOWER_SETTINGS.settings(node), FLOWER_SETTINGS)


def test_randomized_response_defaults_and_requirement():
    assert rr_parameters_from_client_settings({}, CLI_SETTINGS, allow_insecure=False) is None
    assert rr_parameters_from_client_settings({}, CLI_SETTINGS, allow_insecure=False,
                                              default=RRParameters.preset(2)) == RRParameters.preset(2)
    with pytest.raises(InvalidParameters, match="give one of --cpp N"):
        rr_parameters_from_client_settings({}, CLI_SETTINGS, allow_insecure=False, required=True)


def test_a_suggestion_is_taken_only_if_more_private():
    policy = ClientPolicy()  # CPP2, no cap
    assert rr_parameters_with_suggestion(policy, {}, {"cpp": 4}, FLOWER_SETTINGS) == RRParameters.preset(4)
    assert rr_parameters_with_suggestion(policy, {}, {}, FLOWER_SETTINGS) == RRParameters.preset(2)
    own = ClientPolicy(rr_parameters=RRParameters.preset(3))
    assert rr_parameters_with_suggestion(own, {"cpp": 3}, {"cpp": 4}, FLOWER_SETTINGS) == RRParameters.preset(3)
    for downgrade in ({"cpp": 1}, {"cpp": 9}, {"epsilon": 9.0}):
        with pytest.raises(PolicyViolation):
            rr_parameters_with_suggestion(policy, {}, downgrade, FLOWER_SETTINGS)
    capped = ClientPolicy(epsilon_cap=2.0)
    assert epsilon_cap_with_suggestion(capped, {"epsilon-cap": 100}, FLOWER_SETTINGS) == 2.0
    assert epsilon_cap_with_suggestion(capped, {"epsilon-cap": 1}, FLOWER_SETTINGS) == 1.0
    assert epsilon_cap_with_suggestion(ClientPolicy(), {}, FLOWER_SETTINGS) == math.inf
    assert epsilon_cap_from_settings({"epsilon-cap": "inf"}, CLI_SETTINGS) == math.inf
