"""Crash consistency of a client's ledger, head record and memo (protocols/ldp/storage.md).

A crash is injected after (or in the middle of) every write the storage adapter makes; the next
run must then either continue with a spend that covers every report that left the device, with the
permanent answers of those reports unchanged, or refuse naming the file and what to do.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fedprivacy.accounting import participate, refusal_event, replay
from fedprivacy.accounting.ledger import Ledger
from fedprivacy.accounting.recovery import HeadRecord, StateDamaged, reconcile
from fedprivacy.adapters import storage
from fedprivacy.adapters.storage import ClientStore
from fedprivacy.errors import BudgetExceeded, DecodeError
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.ldp import PermanentMemo, RRParameters, epsilon_after_reports

PARAMS = RRParameters.preset(3)
UNIONS = [np.arange(0, 12, dtype=np.uint64), np.arange(4, 20, dtype=np.uint64), np.arange(0, 20, dtype=np.uint64)]
REAL = [1, 5]


class Crash(BaseException):
    """The process dies here (a BaseException, like the SIGKILL it stands for: no handler runs)."""


class Faults:
    """Counts the storage adapter's writes; dies after write number ``at`` (tearing it if ``tear``)."""

    def __init__(self, monkeypatch, at: int | None = None, tear: bool = False) -> None:
        self.count, self.at, self.tear = 0, at, tear
        real_atomic, real_append = storage.write_atomic, ClientStore._append

        def write_atomic(path, data):
            self._step(lambda: real_atomic(path, data), lambda: None)  # an atomic write cannot tear

        def append(store, data):
            self._step(lambda: real_append(store, data), lambda: real_append(store, data[: len(data) // 2]))

        monkeypatch.setattr(storage, "write_atomic", write_atomic)
        monkeypatch.setattr(ClientStore, "_append", append)

    def _step(self, write, torn_write) -> None:
        self.count += 1
        if self.at is not None and self.count == self.at:
            if self.tear:
                torn_write()
            else:
                write()
            raise Crash
        write()


def _round(store: ClientStore, round_index: int, cap: float, sent: list) -> None:
    """One round the way the submodel client runs it: load, draw, memo, line, then send."""
    ledger = store.open_ledger(cap)
    memo = store.load_memo(PARAMS, ledger)
    union = UNIONS[round_index % len(UNIONS)]
    try:
        part = participate(ledger, memo, PARAMS, union, REAL, round_index,
                           random_bytes=DeterministicRandomness(f"r{round_index}"))
    except BudgetExceeded:
        store.append_ledger_line(refusal_event(ledger, round_index))
        return
    store.save_memo(part.memo)
    store.append_ledger_line(part.ledger_line)
    # What leaves the device: the report, drawn from these permanent answers.
    idx = np.searchsorted(part.memo.ids, union)
    sent.append((part.memo.epoch, union.copy(), part.memo.answers[idx].copy()))


def _check_sent_is_charged(store: ClientStore, sent: list) -> float:
    """The spend covers every sent report, and a sent index kept its permanent answer in its epoch."""
    ledger = storage.read_ledger_file(store.ledger_path)
    budget = replay(ledger)
    answers: dict[tuple[int, int], bool] = {}
    counts: dict[tuple[int, int], int] = {}
    for epoch, union, drawn in sent:
        for index, answer in zip(union.tolist(), drawn.tolist()):
            key = (epoch, index)
            assert answers.setdefault(key, answer) == answer, "a sent index got a fresh permanent answer"
            counts[key] = counts.get(key, 0) + 1
    per_epoch: dict[int, int] = {}
    for (epoch, _), count in counts.items():
        per_epoch[epoch] = max(per_epoch.get(epoch, 0), count)
    floor = math.fsum(epsilon_after_reports(PARAMS, t) for t in per_epoch.values())
    assert budget.spent() >= floor - 1e-12, "under-charged"
    return budget.spent()


ROUNDS = 5
CAP = epsilon_after_reports(PARAMS, 4) + 1e-9  # the fifth round is refused: refusal lines are written too


def _reference(tmp_path) -> tuple[int, float]:
    store, sent = ClientStore(tmp_path / "reference", "c"), []
    counter = Faults(pytest.MonkeyPatch())
    try:
        for r in range(ROUNDS):
            _round(store, r, CAP, sent)
    finally:
        pytest.MonkeyPatch().undo()
    return counter.count, _check_sent_is_charged(store, sent)


def test_every_write_point_recovers_with_the_spend_charged(tmp_path, monkeypatch):
    with pytest.MonkeyPatch.context() as patch:
        counter = Faults(patch)
        store, sent = ClientStore(tmp_path / "reference", "c"), []
        for r in range(ROUNDS):
            _round(store, r, CAP, sent)
        writes, reference = counter.count, _check_sent_is_charged(store, sent)
    assert writes >= 3 * ROUNDS  # creation (ledger, head), then memo + line + head per release
    outcomes = {"recovered": 0}
    for at in range(1, writes + 1):
        for tear in (False, True):
            directory = tmp_path / f"crash-{at}-{int(tear)}"
            sent: list = []
            crashed_in = None
            with pytest.MonkeyPatch.context() as patch:
                Faults(patch, at, tear)
                for r in range(ROUNDS):
                    try:
                        _round(ClientStore(directory, "c"), r, CAP, sent)
                    except Crash:
                        crashed_in = r
                        break
            assert crashed_in is not None
            # The next run: the crashed round again, then the rest. Never refused, never under-charged.
            for r in range(crashed_in, ROUNDS):
                _round(ClientStore(directory, "c"), r, CAP, sent)
            spent = _check_sent_is_charged(ClientStore(directory, "c"), sent)
            # At most the crashed round's report is charged twice (it was charged, then drawn again).
            assert reference - 1e-12 <= spent <= epsilon_after_reports(PARAMS, ROUNDS) + 1e-12
            assert reconcile("c", *(p.read_bytes() if p.exists() else None for p in (
                directory / "ledger.jsonl", directory / "ledger.head", directory / "memo.bin"))).repairs == []
            outcomes["recovered"] += 1
    assert outcomes["recovered"] == 2 * writes


def _client(tmp_path, rounds=3, name="c"):
    store, sent = ClientStore(tmp_path / name, name), []
    for r in range(rounds):
        _round(store, r, math.inf, sent)
    return store, sent


def test_memo_ahead_of_its_ledger_is_rolled_forward(tmp_path):
    store, sent = _client(tmp_path)
    lines = store.ledger_path.read_bytes().splitlines(keepends=True)
    store.ledger_path.write_bytes(b"".join(lines[:-1]))  # the crash after the memo, before the line
    store.head_path.write_bytes(HeadRecord("c", len(lines) - 2, json.loads(lines[-2])["hash"]).encode())
    ledger = ClientStore(store.directory, "c").open_ledger(math.inf)
    assert len(ledger.events) == 3 and store.ledger_path.read_bytes() == b"".join(lines)
    _check_sent_is_charged(store, sent)


def test_a_cut_tail_is_detected_and_a_single_cut_release_line_restored_from_the_memo(tmp_path):
    store, sent = _client(tmp_path, rounds=4)
    lines = store.ledger_path.read_bytes().splitlines(keepends=True)
    store.ledger_path.write_bytes(b"".join(lines[:-1]))  # the memo holds that line: restored, hash-checked
    reopened = ClientStore(store.directory, "c")
    assert len(reopened.open_ledger(math.inf).events) == 4 and store.ledger_path.read_bytes() == b"".join(lines)
    assert any("appended and charged" in note for note in reopened.recovered)
    store.ledger_path.write_bytes(b"".join(lines[:-2]))
    with pytest.raises(StateDamaged, match=r"ledger\.jsonl:3: the ledger ends at line 3 .* restore .*ledger\.jsonl"):
        ClientStore(store.directory, "c").open_ledger(math.inf)
    assert store.ledger_path.read_bytes() == b"".join(lines[:-2])  # nothing written on damage


def test_a_cut_refusal_is_detected_by_the_head_record(tmp_path):
    store, _ = _client(tmp_path, rounds=2)
    ledger = store.open_ledger(math.inf)
    store.append_ledger_line(refusal_event(ledger, 7))
    lines = store.ledger_path.read_bytes().splitlines(keepends=True)
    store.ledger_path.write_bytes(b"".join(lines[:-1]))
    with pytest.raises(StateDamaged, match="ledger.head records line 4"):
        ClientStore(store.directory, "c").open_ledger(math.inf)


@pytest.mark.parametrize("leftover", ["memo", "head", "both"])
@pytest.mark.parametrize("ledger_state", ["missing", "empty"])
def test_a_missing_or_empty_ledger_beside_other_state_is_an_error_not_a_fresh_ledger(tmp_path, leftover, ledger_state):
    store, _ = _client(tmp_path)
    if leftover == "memo":
        store.head_path.unlink()
    if leftover == "head":
        store.memo_path.unlink()
    if ledger_state == "missing":
        store.ledger_path.unlink()
    else:
        store.ledger_path.write_bytes(b"")
    with pytest.raises(StateDamaged, match=f"ledger.jsonl: the ledger is {ledger_state} but"):
        ClientStore(store.directory, "c").open_ledger(math.inf)
    assert not store.ledger_path.exists() or store.ledger_path.read_bytes() == b""  # nothing written


def test_an_empty_ledger_alone_is_an_interrupted_creation(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "ledger.jsonl").write_bytes(b"")
    store = ClientStore(tmp_path / "c", "c")
    assert store.open_ledger(1.0).events == [] and store.recovered
    assert reconcile("c", store.ledger_path.read_bytes(), store.head_path.read_bytes(), None).repairs == []


@pytest.mark.parametrize("damage", ["junk", "truncated", "flipped"])
@pytest.mark.parametrize("target", ["memo.bin", "ledger.head"])
def test_junk_memo_or_head_record_is_named(tmp_path, damage, target):
    store, _ = _client(tmp_path)
    path = store.directory / target
    data = path.read_bytes()
    path.write_bytes({"junk": b"hello", "truncated": data[: len(data) // 2], "flipped": data[:-3] + b"x" + data[-2:]}[damage])
    with pytest.raises(StateDamaged, match=f"{target}: the .* is unreadable"):
        ClientStore(store.directory, "c").open_ledger(math.inf)


def test_rolled_back_or_reset_memo_is_named(tmp_path):
    store, _ = _client(tmp_path, rounds=2)
    old = store.memo_path.read_bytes()
    _round(store, 2, math.inf, [])
    store.memo_path.write_bytes(old)
    with pytest.raises(StateDamaged, match="memo.bin: .*release on line 4.*rolled back; restore .*memo.bin"):
        ClientStore(store.directory, "c").open_ledger(math.inf)
    store.memo_path.write_bytes(PermanentMemo.empty("c", PARAMS).encode())
    with pytest.raises(StateDamaged, match="memo.bin: the memo is fresh .* reset"):
        ClientStore(store.directory, "c").open_ledger(math.inf)
    store.memo_path.unlink()
    with pytest.raises(StateDamaged, match="memo.bin: the memo is missing"):
        ClientStore(store.directory, "c").open_ledger(math.inf)


def test_files_of_another_client_are_named(tmp_path):
    _client(tmp_path, name="a")
    _client(tmp_path, name="b")
    (tmp_path / "a" / "memo.bin").write_bytes((tmp_path / "b" / "memo.bin").read_bytes())
    with pytest.raises(StateDamaged, match="memo.bin: the memo belongs to client 'b'"):
        ClientStore(tmp_path / "a", "a").open_ledger(math.inf)


def _legacy_client(tmp_path, rounds):
    """State written by format 1: line appended first, then a memo without its line, no head record."""
    store, ledger = ClientStore(tmp_path / "old", "c"), None
    ledger, header = Ledger.create("c", math.inf)
    store.ledger_path.write_text(header + "\n")
    memo, sent = PermanentMemo.empty("c", PARAMS), []
    for r in range(rounds):
        union = UNIONS[r % len(UNIONS)]
        part = participate(ledger, memo, PARAMS, union, REAL, r, random_bytes=DeterministicRandomness(f"r{r}"))
        with open(store.ledger_path, "a") as handle:
            handle.write(part.ledger_line + "\n")
        memo = part.memo.with_anchor(part.memo.ledger_seq, part.memo.ledger_head.hex())  # no line: format 1
        data = bytearray(memo.encode())
        v1 = bytes(data[:6]) + b"\x01" + bytes(data[7:])
        # Format 1 has no line field: drop the u32 length (0) after the 32-byte anchor, re-checksum.
        offset = 7 + 2 + len(b"c") + 4 + 8 + 32
        body = v1[:offset] + v1[offset + 4 : -32]
        import hashlib

        store.memo_path.write_bytes(body + hashlib.sha256(body).digest())
        sent.append((0, union.copy(), part.memo.answers[np.searchsorted(part.memo.ids, union)].copy()))
    return store, ledger, sent


def test_format_1_memo_is_read_and_continued(tmp_path):
    store, _, sent = _legacy_client(tmp_path, 2)
    assert PermanentMemo.decode(store.memo_path.read_bytes()).version == 1
    for r in range(2, 4):
        _round(ClientStore(store.directory, "c"), r, math.inf, sent)
    assert PermanentMemo.decode(store.memo_path.read_bytes()).version == 2 and store.head_path.exists()
    assert _check_sent_is_charged(store, sent) == pytest.approx(epsilon_after_reports(PARAMS, 4))


@pytest.mark.parametrize("rounds", [0, 3])
def test_format_1_crash_between_line_and_memo_is_recovered_and_charged(tmp_path, rounds):
    """The bug of format 1: the line appended, the memo not saved, the client refused forever."""
    store, ledger, sent = _legacy_client(tmp_path, rounds)
    previous_memo = store.memo_path.read_bytes() if rounds else None
    union = UNIONS[rounds % len(UNIONS)]
    # The crashed round: its line reached the ledger, its memo did not (and nothing was sent).
    orphan = participate(ledger, PermanentMemo.decode(previous_memo) if previous_memo else PermanentMemo.empty("c", PARAMS),
                         PARAMS, union, REAL, rounds, random_bytes=DeterministicRandomness("lost"))
    with open(store.ledger_path, "a") as handle:
        handle.write(orphan.ledger_line + "\n")
    spent_before = replay(storage.read_ledger_file(store.ledger_path)).spent()
    for r in range(rounds + 1, rounds + 4):
        _round(ClientStore(store.directory, "c"), r, math.inf, sent)
    spent = _check_sent_is_charged(store, sent)
    assert spent >= spent_before
    assert reconcile("c", store.ledger_path.read_bytes(), store.head_path.read_bytes(), store.memo_path.read_bytes()).repairs == []


@pytest.mark.parametrize("data", [b"", b"\n", b"{}\n", b"x" * 5000, b'{"check":1}\n'])
def test_head_record_decoding_raises_only_decode_error(data):
    with pytest.raises(DecodeError):
        HeadRecord.decode(data)


def test_stored_format_1_memo_and_ledger_are_read_and_continued(tmp_path):
    from pathlib import Path

    stored = json.loads((Path(__file__).parent / "data" / "memo-format-1.json").read_text())
    memo = PermanentMemo.decode(bytes.fromhex(stored["memo_format_1"]))
    assert memo.version == 1 and memo.ledger_line == "" and not memo.fresh
    assert PermanentMemo.decode(memo.encode()).ledger_seq == memo.ledger_seq  # re-encoded as format 2
    directory = tmp_path / "old"
    directory.mkdir()
    (directory / "ledger.jsonl").write_text("\n".join(stored["ledger"]) + "\n")
    (directory / "memo.bin").write_bytes(bytes.fromhex(stored["memo_format_1"]))
    store = ClientStore(directory, stored["name"])
    ledger = store.open_ledger(math.inf)
    assert store.head_path.exists() and len(ledger.events) == len(stored["ledger"]) - 1
    params = memo.params
    part = participate(ledger, store.load_memo(params, ledger), params, [1, 2, 3], [2], 9,
                       random_bytes=DeterministicRandomness("next"))
    store.save_memo(part.memo)
    store.append_ledger_line(part.ledger_line)
    assert ClientStore(directory, stored["name"]).open_ledger(math.inf).head == part.memo.ledger_head.hex()
