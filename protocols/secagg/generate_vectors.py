#!/usr/bin/env python3
"""Generate the secure-aggregation test vectors (protocols/secagg/vectors/*.json).

Each vector is one whole round run with fixed per-party randomness (DeterministicRandomness seeded
with "<vector name>/party-<id>") through the in-memory driver: the config, the inputs, the dropout
schedule, an optional declarative tampering of server-to-client bytes, every message's bytes in
delivery order, and the expected outcome. ``tests/test_vectors.py`` replays them byte for byte.

Usage: python protocols/secagg/generate_vectors.py [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from fedprivacy.hazmat.field import Modulus, dtype_of
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.secagg import DropoutSchedule, DropStage, SecAggConfig, run_secagg_round
from fedprivacy.secagg.messages import MessageType, UnmaskRequest, decode_message
from fedprivacy.policy import weakened_policy

VECTOR_DIR = Path(__file__).resolve().parent / "vectors"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _vectorfile import write_or_check  # noqa: E402

CASES = [
    {
        "name": "full-graph-no-dropout",
        "description": "Classic SecAgg (k = n - 1), 4 parties, nobody drops.",
        "config": {"party_ids": [1, 2, 3, 4], "dim": 4, "modulus": "U32", "neighbours": 3, "threshold": 3},
        "drops": {},
    },
    {
        "name": "harary-dropouts-every-stage",
        "description": "SecAgg+ on H(9, 6), t = 3; one party drops before each stage, the one dropped "
        "before masked input also sends it late (ignored).",
        "config": {"party_ids": [2, 3, 5, 7, 11, 13, 17, 19, 23], "dim": 5, "modulus": "U64", "neighbours": 6, "threshold": 3},
        "drops": {"3": "advertise", "5": "share", "7": "input", "11": "unmask"},
        "late": [7],
    },
    {
        "name": "prime-field-dropout-after-share",
        "description": "Inputs mod p = 2^61 - 1 (as the private set union needs), full graph of 5, one "
        "party drops after sharing keys: its pairwise masks are removed via its rebuilt key.",
        "config": {"party_ids": [1, 2, 3, 4, 5], "dim": 3, "modulus": "P61", "neighbours": 4, "threshold": 3},
        "drops": {"4": "input"},
    },
    {
        "name": "negative-tampered-ciphertext",
        "description": "The server flips the last byte of the routed shares sent to party 2: party 2 "
        "aborts (InvalidCiphertext) before masking; the round completes without it.",
        "config": {"party_ids": [1, 2, 3, 4, 5], "dim": 3, "modulus": "U32", "neighbours": 4, "threshold": 3},
        "drops": {},
        "tamper": {"kind": "flip-last-byte", "recipient": 2, "message_type": int(MessageType.ROUTED_SHARES)},
    },
    {
        "name": "negative-overlapping-alive-dropped",
        "description": "The server asks party 1 for both share kinds of party 3 (alive and dropped): "
        "party 1 refuses (RemoteProtocolError) and releases nothing; the others still finish.",
        "config": {"party_ids": [1, 2, 3, 4, 5], "dim": 3, "modulus": "U32", "neighbours": 4, "threshold": 3},
        "drops": {},
        "tamper": {"kind": "overlap-unmask", "recipient": 1, "party": 3},
    },
    {
        "name": "negative-too-few-survivors",
        "description": "t = 4 of 5, two parties drop before masked input: the server aborts at "
        "masked-input with no output.",
        "config": {"party_ids": [1, 2, 3, 4, 5], "dim": 3, "modulus": "U32", "neighbours": 4, "threshold": 4},
        "drops": {"2": "input", "5": "input"},
    },
]


def make_config(spec: dict) -> SecAggConfig:
    return SecAggConfig(
        party_ids=tuple(spec["party_ids"]),
        dim=spec["dim"],
        modulus=Modulus[spec["modulus"]],
        neighbours=spec["neighbours"],
        threshold=spec["threshold"],
        session_id=b"fedprivacy secagg test vectors!!",
        round_index=7,
    )


def make_inputs(config: SecAggConfig) -> dict[int, np.ndarray]:
    """Public, structured inputs: party p, coordinate i -> p * 1000 + i (plus a high bit for 2^64)."""
    out = {}
    for party in config.party_ids:
        values = [party * 1000 + i for i in range(config.dim)]
        if config.modulus is Modulus.U64:
            values = [v + (1 << 63) for v in values]
        out[party] = np.array(values, dtype=dtype_of(config.modulus))
    return out


def make_tamper(spec: dict | None):
    if spec is None:
        return None

    def tamper(recipient: int, data: bytes) -> bytes:
        if recipient != spec["recipient"]:
            return data
        if spec["kind"] == "flip-last-byte" and data[6] == spec["message_type"]:
            return data[:-1] + bytes([data[-1] ^ 1])
        if spec["kind"] == "overlap-unmask" and data[6] == MessageType.UNMASK_REQUEST:
            request = decode_message(data)
            assert isinstance(request, UnmaskRequest)
            dropped = tuple(sorted({*request.dropped_ids, spec["party"]}))
            return UnmaskRequest(request.recipient, request.alive_ids, dropped).to_bytes()
        return data

    return tamper


def run_case(case: dict) -> dict:
    config = make_config(case["config"])
    inputs = make_inputs(config)
    schedule = DropoutSchedule(
        {int(p): DropStage(s) for p, s in case["drops"].items()}, frozenset(case.get("late", []))
    )
    transcript: list[dict] = []
    report = run_secagg_round(
        config,
        inputs,
        schedule,
        random_source=lambda party: DeterministicRandomness(f"{case['name']}/party-{party}"),
        tamper=make_tamper(case.get("tamper")),
        observer=lambda sender, recipient, data: transcript.append(
            {"from": sender, "to": recipient, "type": data[6], "hex": data.hex()}
        ),
        policy=weakened_policy(),  # small hand-picked thresholds: the vectors pin the wire, not the policy
    )
    return {
        "name": case["name"],
        "description": case["description"],
        "config": {**case["config"], "session_id": config.session_id.hex(), "round_index": config.round_index,
                   "encoded": config.encode().hex()},
        "inputs": {str(p): [int(v) for v in inputs[p]] for p in config.party_ids},
        "drops": case["drops"],
        "late": case.get("late", []),
        "tamper": case.get("tamper"),
        "messages": transcript,
        "expected": {
            "result": None if report.result is None else [int(v) for v in report.result],
            "aborted_stage": None if report.aborted is None else report.aborted.stage,
            "input_ids": sorted(report.input_ids),
            "client_errors": {str(p): type(e).__name__ for p, e in sorted(report.client_errors.items())},
            "ignored": [[m.party_id, m.message_type, m.reason.value] for m in report.ignored],
        },
    }


def main(argv: list[str] | None = None) -> int:
    return write_or_check(CASES, run_case, VECTOR_DIR, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
