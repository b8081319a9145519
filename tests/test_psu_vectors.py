"""Replay protocols/psu/vectors/*.json through the production code, byte for byte."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from fedprivacy.psu import PSUParameters

ROOT = Path(__file__).resolve().parent.parent
VECTORS = sorted((ROOT / "protocols" / "psu" / "vectors").glob("*.json"))
_spec = importlib.util.spec_from_file_location("psu_vectors", ROOT / "protocols" / "psu" / "generate_vectors.py")
generator = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(generator)


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
