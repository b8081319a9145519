"""The loopback transport and the one rerun policy, on their own and as the three in-memory runs use them."""

from __future__ import annotations

import math

import itertools
from dataclasses import dataclass

import numpy as np
import pytest

from fedprivacy.errors import InvalidParameters, RemoteProtocolError, RoundAborted
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.loopback import Delivery, InProcessHost, Loopback
from fedprivacy.psu import PSUParameters, RerunPolicy, UnionDecodeFailure
from fedprivacy.secagg import DropoutSchedule, SecAggStep, run_secagg_round
from fedprivacy.secagg.driver import step_of
from fedprivacy.secagg.messages import AdvertiseKeys, ConsistencyResponse, MaskedInput, ShareKeys, UnmaskResponse
from fedprivacy.secagg.stages import STEP_OF_SERVER_STAGE, ServerStage
from tests.helpers import PROTOCOL_POLICY, config, plain_sum, random_inputs

# -- a toy protocol: the server asks each client to echo a word, twice, then completes ------------------


@dataclass(frozen=True)
class Word:
    party: int
    text: bytes

    def to_bytes(self) -> bytes:
        return self.party.to_bytes(2, "big") + self.text

    @classmethod
    def decode(cls, data: bytes) -> Word:
        return cls(int.from_bytes(data[:2], "big"), data[2:])


@dataclass(frozen=True)
class Out:
    recipient: int
    message: Word


class EchoServer:
    def __init__(self, parties: list[int], rounds: int = 2) -> None:
        self.parties, self.rounds, self.stage = parties, rounds, 0
        self.received: list[list[Word]] = [[]]

    def receive(self, message: Word) -> None:
        self.received[-1].append(message)

    def close_stage(self) -> list[Out]:
        if self.stage == self.rounds:
            raise RoundAborted("echo", "nothing left")
        self.stage += 1
        self.received.append([])
        if self.stage == self.rounds:
            return []
        return [Out(p, Word(p, b"x" * p)) for p in self.parties]


def _echo(party: int):
    def on(message: Word | None) -> list[Word]:
        if message is None:
            return [Word(party, b"hello")]
        if message.text == b"bad":
            raise RemoteProtocolError("a bad word")
        return [Word(party, message.text + b"!"), Word(party, b"second")]
    return on


def _ticks():
    counter = itertools.count()
    return lambda: float(next(counter))


def _link(parties, vanishes=lambda p, m: False, late=lambda p, m: False, **kwargs):
    server = EchoServer(parties, rounds=kwargs.pop("rounds", 2))
    host = InProcessHost({p: _echo(p) for p in parties}, Word.decode, vanishes=vanishes, late=late,
                         clock=kwargs.get("clock", _ticks()))
    return server, host, Loopback(server, Word.decode, host, parties, **kwargs)


def test_bytes_exchanges_and_replies_are_counted_per_party():
    seen = []
    server, _, link = _link([1, 2, 3], observer=lambda s, r, d: seen.append((s, r, len(d))))
    link.start([1, 2, 3])
    link.exchange(link.close())
    assert link.close() == [] and server.stage == 2
    counters = link.counters
    assert counters.exchanges == 1  # the start is not an exchange: the clients spoke first
    # each client: "hello" (2 + 5), then "x"*p + "!" and "second" (2 + p + 1, 2 + 6); received 2 + p
    assert counters.upload == {p: 7 + (3 + p) + 8 for p in (1, 2, 3)}
    assert counters.download == {p: 2 + p for p in (1, 2, 3)}
    assert [m.text for m in server.received[1]] == [b"x!", b"second", b"xx!", b"second", b"xxx!", b"second"]
    # the server's messages of a stage all go out before the clients answer (window None)
    assert [(s, r) for s, r, _ in seen[3:6]] == [(0, 1), (0, 2), (0, 3)]


def test_the_tick_clock_times_each_client_and_the_server():
    _, _, link = _link([1, 2], clock=_ticks())
    link.start([1, 2])
    link.exchange(link.close())
    # each delivery reads the clock twice (one tick each); the excluded clock is zero
    assert link.counters.client_seconds == {1: 2.0, 2: 2.0}
    assert link.counters.server_seconds > 0


def test_the_server_seconds_are_split_by_step_and_work():
    clock = _ticks()
    server = EchoServer([1, 2])
    host = InProcessHost({p: _echo(p) for p in (1, 2)}, Word.decode, clock=clock)
    link = Loopback(server, Word.decode, host, [1, 2], clock=clock, step=lambda: f"stage-{server.stage}")
    link.start([1, 2])
    link.exchange(link.close())
    link.close()
    # one tick per timed piece: each reply taken in, each close, the one window of messages sent
    assert link.counters.server_steps == {"stage-0": {"receive": 2.0, "close": 1.0},
                                          "stage-1": {"send": 1.0, "receive": 4.0, "close": 1.0}}
    assert link.counters.server_seconds == 9.0
    _, _, plain = _link([1, 2])
    plain.start([1, 2])
    plain.exchange(plain.close())
    assert set(plain.counters.server_steps) == {"server"}
    assert sum(plain.counters.server_steps["server"].values()) == plain.counters.server_seconds


def test_a_scripted_vanishing_withholds_that_reply_and_every_later_message():
    server, host, link = _link([1, 2, 3], vanishes=lambda p, m: p == 2 and m.text == b"second")
    link.start([1, 2, 3])
    link.exchange(link.close())
    link.close()
    texts = [(m.party, m.text) for m in server.received[1]]
    assert (2, b"xx!") in texts and (2, b"second") not in texts  # sent up to the scripted message
    assert host.gone == {2} and link.gone == {2}
    assert link.counters.errors == {}


def test_a_late_reply_reaches_the_server_after_the_close():
    server, _, link = _link([1, 2], vanishes=lambda p, m: p == 2 and m.text == b"hello", late=lambda p, m: True)
    link.start([1, 2])
    link.close()
    assert [m.party for m in server.received[0]] == [1]  # closed over party 1 alone
    assert [(m.party, m.text) for m in server.received[1]] == [(2, b"hello")]  # then the late one
    assert link.counters.upload[2] == 0  # a late message is not counted as sent


def test_a_client_that_aborts_is_gone_and_its_error_kept():
    server, host, link = _link([1, 2], tamper=lambda r, d: d[:2] + b"bad" if r == 1 else d)
    link.start([1, 2])
    link.exchange(link.close())
    assert isinstance(link.counters.errors[1], RemoteProtocolError) and 1 in link.gone
    assert [m.party for m in server.received[1]] == [2, 2]
    assert host.deliver([(1, Word(1, b"again").to_bytes())]) == [Delivery([], True, 0.0, delivered=False)]


def test_small_replies_wait_for_the_close_and_large_ones_go_at_once():
    server, _, link = _link([1, 2], hold_below=100)
    link.start([1, 2])  # 7 bytes each: held
    assert server.received[0] == []
    outbound = link.close()
    assert len(server.received[0]) == 2
    link.exchange(outbound)  # "x!" and "second" (5 and 8 bytes), "xx!" (6): all held
    assert server.received[1] == []
    server, _, link = _link([1, 2], hold_below=8)
    link.start([1, 2])
    assert server.received[0] == []  # "hello" (7 bytes) is short of 8
    link.exchange(link.close())  # party 1's "second" (8 bytes) goes at once, with the "x!" before it
    assert [m.text for m in server.received[1]] == [b"x!", b"second", b"xx!", b"second"]


def test_a_window_of_one_answers_each_message_before_the_next_goes_out():
    seen = []
    _, _, link = _link([1, 2], observer=lambda s, r, d: seen.append((s, r)), window=1)
    link.start([1, 2])
    link.exchange(link.close())
    assert seen[2:] == [(0, 1), (1, 0), (1, 0), (0, 2), (2, 0), (2, 0)]


def test_a_message_for_many_is_encoded_once():
    calls = []

    class Counted(Word):
        def to_bytes(self) -> bytes:
            calls.append(1)
            return super().to_bytes()

    _, _, link = _link([1, 2, 3])
    shared = Counted(0, b"all")
    link.exchange([Out(p, shared) for p in (1, 2, 3)])
    assert len(calls) == 1 and link.counters.download == {1: 5, 2: 5, 3: 5}


def test_an_aborting_server_propagates_from_close():
    _, _, link = _link([1], rounds=0)
    with pytest.raises(RoundAborted):
        link.close()


# -- the one vocabulary of the four steps ------------------------------------------------------------------


def test_one_name_for_each_of_the_four_steps():
    import fedprivacy.secagg as secagg

    assert not hasattr(secagg, "DropStage")  # the old drop-point name is gone: one name for the steps
    assert [s.value for s in SecAggStep] == ["advertise", "share", "input", "unmask"]  # the vectors' names
    assert [s.order for s in SecAggStep] == [0, 1, 2, 3]
    assert {STEP_OF_SERVER_STAGE[s] for s in ServerStage if s in STEP_OF_SERVER_STAGE} == set(SecAggStep)
    assert STEP_OF_SERVER_STAGE[ServerStage.COLLECTING_SIGNATURES] is SecAggStep.UNMASK
    kinds = {AdvertiseKeys: SecAggStep.ADVERTISE, ShareKeys: SecAggStep.SHARE, MaskedInput: SecAggStep.INPUT,
             ConsistencyResponse: SecAggStep.UNMASK, UnmaskResponse: SecAggStep.UNMASK}
    for kind, step in kinds.items():
        assert step_of(kind.__new__(kind)) is step
    assert step_of(object()) is None


def test_the_engine_and_the_driver_read_one_drop_schedule():
    from fedprivacy.submodel import RoundDrops
    from fedprivacy.submodel.messages import Phase, PhaseMessage

    response = ConsistencyResponse.__new__(ConsistencyResponse)
    # a party dropped at UNMASK signs first unless it is scripted as unsigned
    assert not DropoutSchedule({4: SecAggStep.UNMASK}).vanishes_before(4, response)
    assert DropoutSchedule({4: SecAggStep.UNMASK}, unsigned=frozenset({4})).vanishes_before(4, response)
    drops = RoundDrops(psu={4: SecAggStep.UNMASK})
    unmask = UnmaskResponse.__new__(UnmaskResponse)
    assert drops.vanishes_before(4, PhaseMessage(Phase.PSU, 0, unmask))
    assert not drops.vanishes_before(4, PhaseMessage(Phase.PSU, 0, response))
    assert not drops.vanishes_before(4, PhaseMessage(Phase.ROWS, 0, unmask))


def test_a_secure_sum_over_the_loopback_counts_what_the_parties_sent():
    cfg = config(range(1, 7), dim=5, threshold=4)
    inputs = random_inputs(cfg, seed=3)
    sizes: dict[tuple[int, int], int] = {}

    def observe(sender: int, recipient: int, data: bytes) -> None:
        key = (sender, recipient)
        sizes[key] = sizes.get(key, 0) + len(data)

    schedule = DropoutSchedule({2: SecAggStep.INPUT, 5: SecAggStep.UNMASK})
    report = run_secagg_round(cfg, inputs, schedule, observer=observe, policy=PROTOCOL_POLICY,
                              random_source=lambda p: DeterministicRandomness(f"loop {p}"))
    assert report.result is not None
    assert report.result.tolist() == plain_sum(inputs, [1, 3, 4, 5, 6], cfg.modulus)
    assert report.upload_bytes == {p: sizes.get((p, 0), 0) for p in cfg.party_ids}
    assert report.download_bytes == {p: sizes.get((0, p), 0) for p in cfg.party_ids}
    assert set(report.client_masking_seconds) == {1, 2, 3, 4, 5, 6}  # 2 masked, then vanished


# -- the one rerun policy ------------------------------------------------------------------------------------


def _failure(recovered: int = 0, estimated: float = 10.0) -> UnionDecodeFailure:
    return UnionDecodeFailure(recovered, 3, estimated)


def test_the_rerun_policy_counts_attempts_and_caps_the_bound():
    params = PSUParameters(1000, 40, b"s" * 16)
    policy = RerunPolicy(max_attempts=2)
    following = policy.next_attempt(params, _failure(), attempts=1)
    assert following is not None and following.attempt == 1 and following.union_bound == 60
    assert following.session_id == params.session_id and following.universe == params.universe
    assert policy.next_attempt(following, _failure(), attempts=2) is None  # two started: the failure stands
    capped = RerunPolicy(max_attempts=3, max_bound=50).next_attempt(params, _failure(estimated=float("inf")), 1)
    assert capped is not None and capped.union_bound == 50  # 4x would be 160


def test_a_saturated_table_reruns_at_the_cap_or_at_what_fills_every_cell():
    """Every cell occupied: with a cap (a submodel round's ceiling) the rerun takes it, however far
    above the failed bound; without one, at least 4x the bound and 1.5 s (ln s + gamma) for the
    failed table's sub-table size s (a table of 40 ids: 312 cells, 4 sub-tables of 78)."""
    params = PSUParameters(10**6, 40, b"s" * 16)
    saturated = _failure(estimated=float("inf"))
    following = RerunPolicy(max_bound=5000).next_attempt(params, saturated, 1)
    assert following is not None and following.union_bound == 5000
    sub = params.sub_table
    expected = max(160, math.ceil(1.5 * sub * (math.log(sub) + 0.5772156649015329)))
    assert expected > 160  # the filling estimate, not 4x, decides for a table this small
    following = RerunPolicy().next_attempt(params, saturated, 1)
    assert following is not None and following.union_bound == expected
    assert RerunPolicy(max_bound=5000).next_attempt(params, _failure(estimated=100.0), 1).union_bound == 150


@pytest.mark.parametrize("kwargs", [{"max_attempts": 0}, {"max_attempts": True}, {"max_bound": 0}])
def test_the_rerun_policy_refuses_nonsense(kwargs):
    with pytest.raises(InvalidParameters):
        RerunPolicy(**kwargs)


def test_the_standalone_psu_and_the_submodel_server_share_the_policy():
    import inspect

    from fedprivacy.psu import protocol
    from fedprivacy.submodel import server

    # one place decides: neither caller grows its own bound or counts its own ceiling
    for module in (protocol.run_psu_round, server.SubmodelRoundServer._next_psu_params):
        source = inspect.getsource(module)
        assert "next_attempt(" in source and "next_bound(" not in source and ".retry(" not in source
    source = inspect.getsource(server.SubmodelRoundServer._close_psu)  # its rerun comes from there alone
    assert "_next_psu_params(" in source and "next_bound(" not in source and ".retry(" not in source


def test_a_standalone_psu_reruns_with_a_larger_table_until_it_decodes():
    from fedprivacy.psu import run_psu_round

    rng = np.random.default_rng(7)  # public test data
    sets = {p: np.unique(rng.integers(0, 5000, 40)) for p in range(1, 6)}
    union = np.unique(np.concatenate(list(sets.values())))
    params = PSUParameters(5000, 20, b"rerun-session-01", extra_cells=0)  # far too small: the first attempt fails
    result = run_psu_round(sets, params, max_attempts=6, policy=PROTOCOL_POLICY)
    assert result.attempts > 1 and result.params.attempt == result.attempts - 1
    assert result.union.tolist() == union.tolist()
    assert len(result.reports) == result.attempts


def test_the_flower_workflow_logs_its_stages_by_the_step_names():
    pytest.importorskip("flwr")
    from fedprivacy.adapters.flower import workflow
    from fedprivacy.adapters.flower.constants import Stage

    assert set(workflow._STEP) == set(Stage.every()) - {Stage.IDENTIFY}
    assert [workflow._STEP[s] for s in Stage.all()] == list(SecAggStep)  # Flower's four stages, in order
    assert workflow._STEP[Stage.CONSISTENCY_CHECK] is SecAggStep.UNMASK


def test_the_engine_reports_progress_by_the_step_names():
    from fedprivacy.hazmat.prg import DeterministicRandomness as Seeded
    from fedprivacy.ldp import RRParameters
    from fedprivacy.submodel import DeviceState, RoundSettings, run_round
    from fedprivacy.submodel.demo import init_model, synthetic_workload
    from fedprivacy.submodel.reference import ReferenceModel, ReferenceTrainer

    workload = synthetic_workload(clients=5, universe=300, items_per_user=20, seed=4)
    states = {c.client_id: DeviceState.new(ReferenceTrainer(c), RRParameters.preset(2)) for c in workload.clients}
    labels = []
    outcome = run_round(states, ReferenceModel(*init_model(np.arange(300, dtype=np.uint64), 3, seed=1)),
                        RoundSettings(universe=300, max_set_size=20, dropout_fraction=0.2), 0,
                        progress=lambda label, done, total: labels.append(label),
                        random_source=lambda p: Seeded(f"labels-{p}"))
    assert outcome.exchanges == 7
    assert list(dict.fromkeys(labels)) == ["psu:advertise", "psu:share", "psu:input", "psu:unmask",
                                           "collecting-reports:input", "aggregating:input", "aggregating:unmask"]
    # the server's seconds, split by the same step names (plus "created" for the start) and by work
    steps = outcome.server_steps
    assert set(steps) <= {"created", *labels} and {"created", "psu:unmask", "aggregating:unmask"} <= set(steps)
    assert steps["created"].keys() == {"start"} and "close" in steps["aggregating:unmask"]
    assert {work for works in steps.values() for work in works} <= {"start", "receive", "close", "send"}
    assert math.isclose(sum(sum(works.values()) for works in steps.values()), outcome.server_seconds)
