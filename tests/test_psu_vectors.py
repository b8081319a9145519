"""Replay protocols/psu/vectors/*.json through the production code, byte for byte."""

from __future__ import annotations

import json

import pytest

from fedprivacy.psu import PSUParameters

from .helpers import vector_generator

generator, VECTORS = vector_generator("psu")


def test_every_case_has_a_vector_file():
    assert sorted(p.stem for p in VECTORS) == sorted(case["name"] for case in generator.CASES)


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_replay(path):
    stored = json.loads(path.read_text())
    case = next(c for c in generator.CASES if c["name"] == stored["name"])
    replayed = generator.run_case(case)
    assert replayed["parameters"] == stored["parameters"]
    assert replayed["expected"] == stored["expected"]
    params = PSUParameters.decode(bytes.fromhex(stored["parameters"]["encoded"]))
    assert params.encode().hex() == stored["parameters"]["encoded"]
    assert stored["expected"]["success"]
    assert stored["expected"]["union"] == sorted({i for ids in case["sets"] for i in ids})
