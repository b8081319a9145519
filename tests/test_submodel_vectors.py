"""Replay protocols/submodel/vectors/*.json (the version-3 encodings) byte for byte."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedprivacy.errors import DecodeError
from fedprivacy.secagg.rows import ClientRowPlan
from fedprivacy.submodel.messages import RowDownload, decode_submodel_message

from .helpers import vector_generator

generator, VECTORS = vector_generator("submodel")
STORED = {p.stem: json.loads(p.read_text()) for p in VECTORS}


def test_every_case_has_a_vector_file():
    assert sorted(STORED) == sorted(case["name"] for case in generator.CASES)


@pytest.mark.parametrize("case", generator.CASES, ids=lambda c: c["name"])
def test_replay(case):
    stored = STORED[case["name"]]
    assert generator.run_case(case) == stored
    if "adversary" in case:
        _check_snapshots(case, stored)
        return
    if "sets" in case:
        for entry in stored["messages"]:
            for kind in ("report", "union"):
                message = decode_submodel_message(bytes.fromhex(entry[kind]))
                assert message.ids.tolist() == entry["ids"] and message.to_bytes().hex() == entry[kind]
        return
    data = bytes.fromhex(stored["row_download"])
    message = decode_submodel_message(data)
    assert isinstance(message, RowDownload) and message.to_bytes() == data
    assert message.rows.tolist() == case["values"] and message.dense.tolist() == case["dense"]
    assert message.plan.rows.tolist() == case["rows"] + [case["universe"] + j for j in range(case["dense_rows"])]
    assert {str(p): q.tolist() for p, q in message.plan.sharing()} == case["shared"] == stored["sharing"]
    plan = ClientRowPlan.decode(bytes.fromhex(stored["plan"]), case["parties"])
    assert plan.encode(case["parties"]).hex() == stored["plan"]
    with pytest.raises(DecodeError):  # the compact form is read only against the sum's parties
        ClientRowPlan.decode(bytes.fromhex(stored["plan"]))
    with pytest.raises(DecodeError):  # ... and not against another party list
        ClientRowPlan.decode(bytes.fromhex(stored["plan"]), case["parties"][:-1])


def test_exact_float32_values_travel_in_half_the_bytes():
    wide, narrow = (bytes.fromhex(STORED[name]["row_download"]) for name in ("row-download-float64", "row-download-float32"))
    case = next(c for c in generator.CASES if c["name"] == "row-download-float32")
    values = np.array(case["values"]).size + len(case["dense"])
    assert len(wide) - len(narrow) == 4 * values
    # A float64 encoding of values all exact in float32 is a second encoding: refused.
    message = decode_submodel_message(narrow)
    head = len(narrow) - 4 * values - 4  # the value-size byte sits before the row values
    forged = bytearray(narrow[: head - 1]) + bytes([8])
    forged += message.rows.astype(">f8").tobytes() + len(message.dense).to_bytes(4, "big")
    forged += message.dense.astype(">f8").tobytes()
    with pytest.raises(DecodeError, match="float32"):
        decode_submodel_message(bytes(forged))


def _check_snapshots(case, stored):
    """The stored snapshots decode to the stages they name, with the nested sums of their kind."""
    from fedprivacy.submodel._snapshot import decode_round
    from fedprivacy.submodel.stages import RoundClientStage

    created = decode_round(bytes.fromhex(stored["snapshots"]["created"]))
    assert created.stage is RoundClientStage.CREATED and created.round_index is None
    sketch = decode_round(bytes.fromhex(stored["snapshots"]["sketch-sent"]))
    assert sketch.stage is RoundClientStage.SKETCH_SENT and sketch.round_index == 5 and sketch.chosen is None
    kinds = {sketch.psu[6], sketch.rows[6]}  # the secagg state types nested
    assert kinds == ({19} if case["adversary"] == "malicious" else {9})
