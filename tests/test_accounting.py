"""Ledger, composition, budget filter, storage and the audit command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedprivacy.accounting import Ledger, LedgerIntegrityError, parse_ledger, participate, refusal_event, replay
from fedprivacy.accounting.report import client_report
from fedprivacy.adapters.storage import ClientStore, read_ledger_file
from fedprivacy.cli import main
from fedprivacy.errors import BudgetExceeded, DecodeError
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.ldp import PermanentMemo, RRParameters, epsilon_after_reports


def _run_rounds(store, params, cap, unions, real, seed="s"):
    ledger = store.open_ledger(cap)
    outcomes = []
    for round_index, union in enumerate(unions):
        memo = store.load_memo(params, ledger)
        try:
            part = participate(ledger, memo, params, union, real, round_index,
                               random_bytes=DeterministicRandomness(f"{seed}{round_index}"))
        except BudgetExceeded:
            store.append_ledger_line(refusal_event(ledger, round_index))
            outcomes.append(None)
            continue
        store.append_ledger_line(part.ledger_line)
        store.save_memo(part.memo)
        outcomes.append(part)
    return ledger, outcomes


def test_repeated_rounds_cost_epsilon_t_and_never_more_than_epsilon_inf(tmp_path):
    params = RRParameters.preset(4)
    store = ClientStore(tmp_path / "alice", "alice")
    union = np.arange(100, dtype=np.uint64)
    ledger, outcomes = _run_rounds(store, params, math.inf, [union] * 30, [1, 2, 3])
    budget = replay(read_ledger_file(store.ledger_path))
    assert budget.spent() == pytest.approx(epsilon_after_reports(params, 30))
    assert budget.spent() <= params.epsilon_inf
    assert budget.naive_sum == pytest.approx(30 * params.epsilon_1)  # reported, not a bound
    assert not budget.disagreement()
    assert budget.rounds_until_exhaustion() is None  # the cap is infinite


def test_new_indices_are_new_events_but_not_a_higher_per_index_cost(tmp_path):
    params = RRParameters.preset(3)
    store = ClientStore(tmp_path / "bob", "bob")
    unions = [np.arange(i * 10, i * 10 + 10, dtype=np.uint64) for i in range(5)]  # disjoint unions
    ledger, outcomes = _run_rounds(store, params, math.inf, unions, [5])
    assert [o.event.indices_new for o in outcomes] == [10] * 5
    assert replay(ledger).spent() == pytest.approx(params.epsilon_1)  # every index reported once


def test_budget_filter_refuses_before_anything_leaves(tmp_path):
    params = RRParameters("1/2", "9/500", "3/4", "1/4")
    store = ClientStore(tmp_path / "carol", "carol")
    union = np.arange(20, dtype=np.uint64)
    ledger, outcomes = _run_rounds(store, params, 1.2, [union] * 3, [1])
    assert outcomes[0] is not None and outcomes[1] is None and outcomes[2] is None
    budget = replay(read_ledger_file(store.ledger_path))
    assert budget.refusals == 2 and budget.spent() <= 1.2
    assert budget.would_exceed(params, 0, 2) and budget.rounds_until_exhaustion() == 0
    assert len(PermanentMemo.decode(store.memo_path.read_bytes())) == 20  # the refused rounds kept nothing


def test_missing_or_foreign_memo_is_an_error_not_a_reset(tmp_path):
    params = RRParameters.preset(4)
    store = ClientStore(tmp_path / "dave", "dave")
    ledger, _ = _run_rounds(store, params, math.inf, [np.arange(10, dtype=np.uint64)], [1])
    store.memo_path.unlink()
    with pytest.raises(DecodeError, match="missing"):
        store.load_memo(params, ledger)
    other = ClientStore(tmp_path / "erin", "erin")
    other_ledger, _ = _run_rounds(other, params, math.inf, [np.arange(10, dtype=np.uint64)], [1])
    store.memo_path.write_bytes(other.memo_path.read_bytes())
    with pytest.raises(Exception, match="belongs"):
        store.load_memo(params, ledger)
    store.memo_path.write_bytes(other.memo_path.read_bytes()[:-3])
    with pytest.raises(DecodeError):
        store.load_memo(params, ledger)


def _lines(tmp_path, rounds=4):
    store = ClientStore(tmp_path / "frank", "frank")
    _run_rounds(store, RRParameters.preset(3), 5.0, [np.arange(30, dtype=np.uint64)] * rounds, [2])
    return store, store.ledger_path.read_text().splitlines()


@pytest.mark.parametrize("tamper", ["edit", "delete", "swap", "insert", "truncate-json"])
def test_edited_ledgers_are_reported_with_file_and_line(tmp_path, tamper):
    store, lines = _lines(tmp_path)
    if tamper == "edit":
        lines[2] = lines[2].replace('"max_reports":2', '"max_reports":1')
        bad = 3
    elif tamper == "delete":
        del lines[2]
        bad = 3
    elif tamper == "swap":
        lines[2], lines[3] = lines[3], lines[2]
        bad = 3
    elif tamper == "insert":
        lines.insert(2, lines[1])
        bad = 3
    else:
        lines[4] = lines[4][:-5]
        bad = 5
    store.ledger_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LedgerIntegrityError) as info:
        read_ledger_file(store.ledger_path)
    assert info.value.line == bad and info.value.source == str(store.ledger_path)


@given(st.lists(st.tuples(st.sampled_from([2, 3, 4]), st.integers(1, 6), st.booleans()), min_size=1, max_size=8))
def test_ledger_is_append_only_and_replay_is_deterministic(steps):
    ledger, header = Ledger.create("gina", math.inf)
    lines = [header]
    epoch = 0
    for cpp, reports, refusal in steps:
        if refusal:
            lines.append(refusal_event(ledger, len(lines)))
            continue
        params = RRParameters.preset(cpp)
        epoch += 1
        from fedprivacy.accounting.events import PrivacyEvent

        lines.append(ledger.append(PrivacyEvent(
            "gina", len(lines), "release", "double-randomized-response", params.as_strings(), epoch=epoch,
            indices_reported=10, max_reports=reports, epsilon_report=params.epsilon_1, epsilon_inf=params.epsilon_inf)))
    parsed = parse_ledger(lines)
    assert parsed.head == ledger.head and len(parsed.events) == len(ledger.events)
    assert client_report("x", replay(parsed)) == client_report("x", replay(parse_ledger(lines)))
    prefix = parse_ledger(lines[:-1]) if len(lines) > 1 else None
    if prefix is not None:
        assert replay(prefix).spent() <= replay(parsed).spent() + 1e-12  # appending never lowers the spend


def test_audit_command(tmp_path, capsys):
    for name in ("h1", "h2", "h3"):
        store = ClientStore(tmp_path / name, name)
        _run_rounds(store, RRParameters.preset(3), 3.0, [np.arange(40, dtype=np.uint64)] * 3, [1])
    assert main(["audit", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["clients"] == 3 and report["disagreements"] == 0 and report["broken_ledgers"] == []
    client = report["per_client"][0]
    assert client["spent"] == pytest.approx(epsilon_after_reports(RRParameters.preset(3), 3))
    assert client["accountant"] == "memoized-exact-pure" and client["rounds_until_exhaustion"] is None
    ledger_path = tmp_path / "h2" / "ledger.jsonl"
    lines = ledger_path.read_text().splitlines()
    lines[1] = lines[1].replace('"round_index":0', '"round_index":9')
    ledger_path.write_text("\n".join(lines) + "\n")
    assert main(["audit", str(tmp_path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["broken_ledgers"] == [{"file": str(ledger_path), "line": 2, "reason": "hash mismatch: the line was edited"}]
    assert main(["audit", str(tmp_path)]) == 1
    assert f"ERROR   {ledger_path}:2\n" in capsys.readouterr().out


def test_reset_or_rolled_back_memo_and_truncated_ledger_are_refused(tmp_path):
    from fedprivacy.errors import LocalProtocolError

    params = RRParameters.preset(3)
    store = ClientStore(tmp_path / "ivan", "ivan")
    union = np.arange(10, dtype=np.uint64)
    ledger, _ = _run_rounds(store, params, math.inf, [union] * 3, [1])
    old_memo = store.memo_path.read_bytes()
    _run_rounds(store, params, math.inf, [union], [1], seed="later")  # one more release
    latest_memo = store.memo_path.read_bytes()
    ledger = read_ledger_file(store.ledger_path)
    with pytest.raises(LocalProtocolError, match="reset"):
        participate(ledger, PermanentMemo.empty("ivan", params), params, union, [1], 9)
    store.memo_path.write_bytes(old_memo)  # roll the memo back
    with pytest.raises(LocalProtocolError, match="rolled back"):
        participate(ledger, store.load_memo(params, ledger), params, union, [1], 9)
    store.memo_path.write_bytes(latest_memo)
    assert participate(ledger, store.load_memo(params, ledger), params, union, [1], 9).event.max_reports == 5
    lines = store.ledger_path.read_text().splitlines()
    store.ledger_path.write_text("\n".join(lines[:3]) + "\n")  # cut the tail: still a valid chain
    truncated = read_ledger_file(store.ledger_path)
    with pytest.raises(LocalProtocolError, match="truncated"):
        participate(truncated, store.load_memo(params, truncated), params, union, [1], 9)
    # A new epoch is the legitimate way to start a fresh memo; it is charged on top.
    participate(truncated, PermanentMemo.empty("ivan", params, epoch=1), params, union, [1], 9)
    assert replay(truncated).spent() > params.epsilon_1


def test_changed_parameters_in_the_same_epoch_are_charged_separately():
    ledger, _ = Ledger.create("judy", 2.0)
    cpp3, cpp4 = RRParameters.preset(3), RRParameters.preset(4)
    memo = PermanentMemo.empty("judy", cpp3)
    for round_index in range(5):
        part = participate(ledger, memo, cpp3, [1, 2], [1], round_index, random_bytes=DeterministicRandomness(str(round_index)))
        memo = part.memo
    with pytest.raises(BudgetExceeded):  # CPP4 in epoch 0 again would add its own cost past the cap
        participate(ledger, PermanentMemo.empty("judy", cpp4), cpp4, [1, 2], [1], 6)
    assert replay(ledger).spent() <= 2.0
