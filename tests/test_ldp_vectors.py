"""Replay protocols/ldp/vectors/*.json through the production code, byte for byte."""

from __future__ import annotations

import json

import pytest

from fedprivacy.accounting import parse_ledger, replay
from fedprivacy.ldp import PermanentMemo

from .helpers import vector_generator

generator, VECTORS = vector_generator("ldp")


def test_every_case_has_a_vector_file():
    assert sorted(p.stem for p in VECTORS) == sorted(case["name"] for case in generator.CASES)


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_replay(path):
    stored = json.loads(path.read_text())
    case = next(c for c in generator.CASES if c["name"] == stored["name"])
    assert generator.run_case(case)["expected"] == stored["expected"]
    memo = PermanentMemo.decode(bytes.fromhex(stored["expected"]["memo"]))
    assert memo.encode().hex() == stored["expected"]["memo"]
    budget = replay(parse_ledger(stored["expected"]["ledger"]))
    assert budget.spent() <= budget.cap
