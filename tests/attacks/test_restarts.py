"""Restarts beyond the attempt limit: a server that opens the same round again and again (a fresh
attempt-0 ``RoundStart``, each time with a smaller cohort) reruns the PSU as often as it likes unless
the client counts attempts per round index where a restart cannot reset them: in its ledger. Core
client (restarted objects, and a node restarted from disk) and the Flower ClientApp."""

from __future__ import annotations

import pytest

from fedprivacy.adapters.storage import ClientStore
from fedprivacy.errors import PolicyViolation
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.ldp import RRParameters
from fedprivacy.policy import weakened_policy
from fedprivacy.submodel.client import DeviceState, SubmodelRoundClient
from fedprivacy.submodel.messages import RoundStart
from fedprivacy.submodel.server import SubmodelRoundServer
from fedprivacy.submodel.settings import RoundSettings
from fedprivacy.submodel.stages import RoundClientStage

from .workload import FixedSetClient, TinyModel

ROUND = 5
COHORTS = [9, 8, 7, 6, 5]  # each restart drops one more party: differencing material


def _round_starts():
    settings = RoundSettings(universe=500, max_set_size=12)
    for size in COHORTS:
        outbound = SubmodelRoundServer(TinyModel(), settings, list(range(1, size + 1)), ROUND).start()
        yield next(o.message for o in outbound if o.recipient == 1)


def _answered(states_for_each_restart) -> list[bool]:
    answered = []
    for message, state in zip(_round_starts(), states_for_each_restart):
        client = SubmodelRoundClient(state(), 1, random_bytes=DeterministicRandomness(f"restart{len(answered)}"))
        try:
            out = client.receive(message)
        except PolicyViolation as exc:
            assert exc.knob == "max_psu_attempts" and client.stage is RoundClientStage.ABORTED
            answered.append(False)
            continue
        answered.append(bool(out))
    return answered


def test_a_weakened_client_joins_every_restart():
    state = DeviceState.new(FixedSetClient(1), RRParameters.preset(2), policy=weakened_policy())
    assert _answered([lambda: state] * len(COHORTS)) == [True] * len(COHORTS)


def test_the_real_client_stops_at_max_psu_attempts_per_round_index():
    state = DeviceState.new(FixedSetClient(1), RRParameters.preset(2))
    assert _answered([lambda: state] * len(COHORTS)) == [True, True, True, False, False]
    kinds = [e.kind for e in state.ledger.events]
    assert kinds == ["psu-attempt"] * 3 + ["refusal"] * 2


def test_a_node_restarted_from_disk_keeps_counting(tmp_path):
    def reload():
        return DeviceState.new(FixedSetClient(1), RRParameters.preset(2), store=ClientStore(tmp_path, "client-1"))

    assert _answered([reload] * len(COHORTS)) == [True, True, True, False, False]


def test_another_round_index_starts_a_new_count():
    state = DeviceState.new(FixedSetClient(1), RRParameters.preset(2))
    _answered([lambda: state] * 3)
    settings = RoundSettings(universe=500, max_set_size=12)
    outbound = SubmodelRoundServer(TinyModel(), settings, list(range(1, 6)), ROUND + 1).start()
    message = next(o.message for o in outbound if o.recipient == 1)
    assert SubmodelRoundClient(state, 1).receive(message)


# -- Flower: the ClientApp handler, restarted by fresh attempt-0 RoundStarts --------------------------


@pytest.fixture
def task_identity(monkeypatch):
    """Flower's message construction reads the task identity a real ClientApp process has."""
    pytest.importorskip("flwr")
    from flwr.supercore.task_identity import TaskIdentity

    for name, value in (("_run_id", 1), ("_node_id", 7), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, name, value)


def _flower_answers(node_config: dict) -> list[bool]:
    from flwr.app import ConfigRecord, Context, Message, RecordDict

    from fedprivacy.adapters.flower import SecureSubmodelClient
    from fedprivacy.adapters.flower.submodel import SUBMODEL_MESSAGE_TYPE, SUBMODEL_RECORD

    handler = SecureSubmodelClient(lambda context: FixedSetClient(1))
    context = Context(run_id=1, node_id=7, node_config=node_config, state=RecordDict(), run_config={})
    answers = []
    for index, start in enumerate(_round_starts()):
        assert isinstance(start, RoundStart) and start.psu_params.attempt == 0
        content = RecordDict({SUBMODEL_RECORD: ConfigRecord({"round": ROUND, "party": 1, "messages": [start.to_bytes()]})})
        message = Message(content, 7, SUBMODEL_MESSAGE_TYPE, group_id=str(ROUND))
        message.metadata.__dict__["_message_id"] = f"m{index}"
        reply = handler(message, context)
        answers.append(not reply.has_error())
    return answers


def test_flower_a_node_without_a_limit_joins_every_restart(task_identity):
    assert _flower_answers({"fedprivacy-max-psu-attempts": 64}) == [True] * len(COHORTS)


def test_flower_the_real_node_stops_at_max_psu_attempts(task_identity):
    assert _flower_answers({}) == [True, True, True, False, False]
