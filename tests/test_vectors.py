"""Replay protocols/secagg/vectors/*.json byte for byte through the production code."""

from __future__ import annotations

import json

import pytest

from fedprivacy.secagg import SecAggConfig
from fedprivacy.secagg.messages import decode_message

from .helpers import vector_generator

generator, VECTORS = vector_generator("secagg")


def test_every_case_has_a_vector_file():
    assert sorted(p.stem for p in VECTORS) == sorted(case["name"] for case in generator.CASES)


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_replay(path):
    stored = json.loads(path.read_text())
    case = next(c for c in generator.CASES if c["name"] == stored["name"])
    config = generator.make_config(case["config"])
    assert config.encode().hex() == stored["config"]["encoded"]
    assert SecAggConfig.decode(bytes.fromhex(stored["config"]["encoded"])) == config
    for message in stored["messages"]:  # each stored message is canonical
        data = bytes.fromhex(message["hex"])
        assert decode_message(data).to_bytes() == data
    replayed = generator.run_case(case)
    assert replayed["messages"] == stored["messages"]
    assert replayed["expected"] == stored["expected"]


def test_negative_vectors_cover_the_required_failures():
    by_name = {p.stem: json.loads(p.read_text())["expected"] for p in VECTORS}
    assert by_name["negative-tampered-ciphertext"]["client_errors"] == {"2": "InvalidCiphertext"}
    assert by_name["negative-overlapping-alive-dropped"]["client_errors"] == {"1": "RemoteProtocolError"}
    assert by_name["negative-too-few-survivors"]["result"] is None
    assert by_name["negative-too-few-survivors"]["aborted_stage"] == "masked-input"
    for name in ("forged-advertisement", "unknown-identity", "forged-signature", "split-set", "too-few-signatures",
                 "below-quorum"):
        expected = by_name[f"negative-malicious-{name}"]
        assert expected["client_errors"] == {"1": "RemoteProtocolError"} and expected["result"] is not None
    # a quorum of genuine signatures over another set convinces nobody: no output
    other = by_name["negative-malicious-quorum-of-another-set"]
    assert other["result"] is None and other["aborted_stage"] == "unmasking"
    assert other["client_errors"] == {str(p): "RemoteProtocolError" for p in range(1, 7)}
    assert by_name["malicious-full-graph-quorum"]["result"] is not None
    assert by_name["malicious-full-graph-dropouts"]["signed_ids"] == [1, 2, 3, 4]
    assert by_name["malicious-harary-dropouts"]["result"] is not None
