#!/usr/bin/env python3
"""Generate the secure-aggregation test vectors (protocols/secagg/vectors/*.json).

Each vector is one whole round run with fixed per-party randomness (DeterministicRandomness seeded
with "<vector name>/party-<id>"; identities in malicious mode from "<vector name>/identities") through
the in-memory driver: the config, the inputs, the dropout
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
from fedprivacy.secagg import DropoutSchedule, SecAggStep, SecAggConfig, TrustStore, make_identities, run_secagg_round
from fedprivacy.secagg.messages import ConsistencyRequest, MessageType, UnmaskRequest, decode_message
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
    # Malicious mode (spec §14): signed keys, the consistency check, and its negatives.
    {
        "name": "malicious-full-graph-dropouts",
        "description": "Malicious mode, full graph of 6, t = 4: party 5 drops before masked input (its "
        "mask key is rebuilt), party 6 sends its input but never signs U3 (it gets no unmasking request).",
        "config": {"party_ids": [1, 2, 3, 4, 5, 6], "dim": 3, "modulus": "U32", "neighbours": 5, "threshold": 4,
                   "malicious": True},
        "drops": {"5": "input", "6": "unmask"},
        "unsigned": [6],
    },
    {
        "name": "malicious-harary-dropouts",
        "description": "Malicious mode on H(9, 6), t = 4 (> (k + c) / 2), mod p: one party drops before masked input, one "
        "after signing U3 (before unmasking); each client checks t signers among the holders of each peer it answers for.",
        "config": {"party_ids": [2, 3, 5, 7, 11, 13, 17, 19, 23], "dim": 3, "modulus": "P61", "neighbours": 6,
                   "threshold": 4, "malicious": True},
        "drops": {"5": "unmask", "13": "input"},
    },
    {
        "name": "negative-malicious-forged-advertisement",
        "description": "The server flips a bit of one signature in party 1's key broadcast: party 1 aborts "
        "(RemoteProtocolError) before sharing; the others finish.",
        "config": {"party_ids": [1, 2, 3, 4, 5, 6], "dim": 3, "modulus": "U32", "neighbours": 5, "threshold": 4,
                   "malicious": True},
        "drops": {},
        "tamper": {"kind": "flip-last-byte", "recipient": 1, "message_type": int(MessageType.SIGNED_KEY_BROADCAST)},
    },
    {
        "name": "negative-malicious-unknown-identity",
        "description": "Party 1's trust store has no key for party 4: party 1 refuses the key broadcast "
        "(RemoteProtocolError); the others finish.",
        "config": {"party_ids": [1, 2, 3, 4, 5, 6], "dim": 3, "modulus": "U32", "neighbours": 5, "threshold": 4,
                   "malicious": True},
        "drops": {},
        "trust_omits": {"1": [4]},
    },
    {
        "name": "negative-malicious-forged-signature",
        "description": "The server flips a bit of the last consistency signature it forwards to party 1: "
        "party 1 releases nothing (RemoteProtocolError); the others finish.",
        "config": {"party_ids": [1, 2, 3, 4, 5, 6], "dim": 3, "modulus": "U32", "neighbours": 5, "threshold": 4,
                   "malicious": True},
        "drops": {},
        "tamper": {"kind": "flip-last-byte", "recipient": 1, "message_type": int(MessageType.SIGNED_UNMASK_REQUEST)},
    },
    {
        "name": "negative-malicious-split-set",
        "description": "The server shows party 2 a survivor set without party 6 (party 2 signs it; the "
        "server's own check ignores that signature) and forwards party 2's signature to party 1 with the "
        "true set's: party 1 sees a split and releases nothing; the others finish without party 2.",
        "config": {"party_ids": [1, 2, 3, 4, 5, 6], "dim": 3, "modulus": "U32", "neighbours": 5, "threshold": 4,
                   "malicious": True},
        "drops": {},
        "tamper": {"kind": "split-set", "shown_to": 2, "without": 6, "recipient": 1},
    },
    {
        "name": "negative-malicious-too-few-signatures",
        "description": "The server forwards only t - 1 = 3 consistency signatures to party 1: party 1 "
        "releases nothing (RemoteProtocolError); the others finish.",
        "config": {"party_ids": [1, 2, 3, 4, 5, 6], "dim": 3, "modulus": "U32", "neighbours": 5, "threshold": 4,
                   "malicious": True},
        "drops": {},
        "tamper": {"kind": "too-few-signatures", "recipient": 1},
    },
    # The consistency quorum (spec §14.2, §14.4): on the full graph a majority, here below t.
    {
        "name": "malicious-full-graph-quorum",
        "description": "Malicious mode, full graph of 6, t = 5, consistency quorum 4 (a majority of 6): "
        "party 6 drops after signing U3; each party is forwarded exactly 4 signatures (fewer than t) and "
        "the sum is exact.",
        "config": {"party_ids": [1, 2, 3, 4, 5, 6], "dim": 3, "modulus": "U32", "neighbours": 5, "threshold": 5,
                   "quorum": 4, "malicious": True},
        "drops": {"6": "unmask"},
    },
    {
        "name": "negative-malicious-below-quorum",
        "description": "Full graph of 6, t = 5, quorum 4: the server forwards only quorum - 1 = 3 valid "
        "consistency signatures to party 1, which releases nothing (RemoteProtocolError); the others finish.",
        "config": {"party_ids": [1, 2, 3, 4, 5, 6], "dim": 3, "modulus": "U32", "neighbours": 5, "threshold": 5,
                   "quorum": 4, "malicious": True},
        "drops": {},
        "tamper": {"kind": "too-few-signatures", "recipient": 1},
    },
    {
        "name": "negative-malicious-quorum-of-another-set",
        "description": "Full graph of 6, t = 4, quorum 4, a server that does not check signatures: it shows "
        "parties 2-5 a survivor set without party 6 (they sign it) and forwards to party 1 those four "
        "genuine signatures, a quorum over the other set; party 1 refuses (RemoteProtocolError), and so "
        "does everyone else (parties 2-5: the request is not the split of the set they signed; party 6: "
        "three of its forwarded signatures are over the other set): the round aborts at unmasking.",
        "config": {"party_ids": [1, 2, 3, 4, 5, 6], "dim": 3, "modulus": "U32", "neighbours": 5, "threshold": 4,
                   "quorum": 4, "malicious": True},
        "drops": {},
        "server_trust": False,
        "tamper": {"kind": "quorum-of-another-set", "shown_to": [2, 3, 4, 5], "without": 6, "recipient": 1},
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
        malicious=spec.get("malicious", False),
        quorum=spec.get("quorum", 0),
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


def make_tamper(spec: dict | None, seen: dict[int, list[bytes]], required: int):
    """``seen`` collects what each party sent (the server's view), for the split-set attacks;
    ``required``: the signatures a client needs (the quorum on the full graph, t otherwise)."""
    if spec is None:
        return None

    def tamper(recipient: int, data: bytes) -> bytes:
        if spec["kind"] == "quorum-of-another-set":
            if recipient in spec["shown_to"] and data[6] == MessageType.CONSISTENCY_REQUEST:
                request = decode_message(data)
                return ConsistencyRequest(recipient, tuple(p for p in request.survivors if p != spec["without"])).to_bytes()
            if recipient == spec["recipient"] and data[6] == MessageType.SIGNED_UNMASK_REQUEST:
                request = decode_message(data)
                others = [decode_message(seen[p][-1]) for p in spec["shown_to"]]  # their signatures over the other set
                signatures = tuple(sorted((o.sender, o.signature) for o in others))
                return UnmaskRequest(recipient, request.alive_ids, request.dropped_ids, signatures).to_bytes()
            return data
        if spec["kind"] == "split-set" and recipient == spec["shown_to"] and data[6] == MessageType.CONSISTENCY_REQUEST:
            request = decode_message(data)
            assert isinstance(request, ConsistencyRequest)
            return ConsistencyRequest(recipient, tuple(p for p in request.survivors if p != spec["without"])).to_bytes()
        if recipient != spec["recipient"]:
            return data
        if spec["kind"] == "split-set" and data[6] == MessageType.SIGNED_UNMASK_REQUEST:
            request = decode_message(data)
            other = decode_message(seen[spec["shown_to"]][-1])  # its signature over the other set
            signatures = dict(request.signatures)
            signatures[other.sender] = other.signature
            return UnmaskRequest(recipient, request.alive_ids, request.dropped_ids, tuple(sorted(signatures.items()))).to_bytes()
        if spec["kind"] == "too-few-signatures" and data[6] == MessageType.SIGNED_UNMASK_REQUEST:
            request = decode_message(data)
            kept = request.signatures[: required - 1]
            return UnmaskRequest(recipient, request.alive_ids, request.dropped_ids, kept).to_bytes()
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
        {int(p): SecAggStep(s) for p, s in case["drops"].items()},
        frozenset(case.get("late", [])),
        unsigned=frozenset(case.get("unsigned", [])),
    )
    transcript: list[dict] = []
    seen: dict[int, list[bytes]] = {}

    def observe(sender: int, recipient: int, data: bytes) -> None:
        transcript.append({"from": sender, "to": recipient, "type": data[6], "hex": data.hex()})
        seen.setdefault(sender, []).append(data)

    identities = trust = None
    client_trust = {}
    if config.malicious:
        identities, trust = make_identities(config.party_ids, DeterministicRandomness(f"{case['name']}/identities"))
        for party, omitted in case.get("trust_omits", {}).items():
            client_trust[int(party)] = TrustStore({p: k for p, k in trust.items() if p not in omitted})
    report = run_secagg_round(
        config,
        inputs,
        schedule,
        random_source=lambda party: DeterministicRandomness(f"{case['name']}/party-{party}"),
        tamper=make_tamper(case.get("tamper"), seen, config.quorum or config.threshold),
        server_trust=case.get("server_trust", True),
        observer=observe,
        identities=identities,
        trust=trust,
        client_trust=client_trust,
        policy=weakened_policy(),  # small hand-picked thresholds: the vectors pin the wire, not the policy
    )
    extra = {}
    if config.malicious:
        extra = {
            "identities": {str(p): trust[p].hex() for p in config.party_ids},
            "unsigned": case.get("unsigned", []),
            "trust_omits": case.get("trust_omits", {}),
            "server_trust": case.get("server_trust", True),
        }
    vector = {
        **extra,
        "name": case["name"],
        "description": case["description"],
        "config": {**case["config"], **({"quorum": config.quorum} if config.malicious else {}),
                   "session_id": config.session_id.hex(), "round_index": config.round_index,
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
    if config.malicious:
        vector["expected"]["signed_ids"] = sorted(report.signed_ids)
    return vector


def main(argv: list[str] | None = None) -> int:
    return write_or_check(CASES, run_case, VECTOR_DIR, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
