#!/usr/bin/env python3
"""Generate the submodel wire vectors (protocols/submodel/vectors/*.json): the version-3 encodings.

Each case fixes the content of messages (id sets, a row plan over the rows' sum's parties, row values)
and stores their bytes; the replay test (tests/test_submodel_vectors.py) re-encodes and decodes them
through the production code. See spec.md, "Messages", and protocols/secagg/spec.md §12 (type 18).

Usage: python protocols/submodel/generate_vectors.py [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from fedprivacy.hazmat.field import Modulus
from fedprivacy.secagg import SecAggConfig
from fedprivacy.secagg.rows import ClientRowPlan
from fedprivacy.submodel.messages import RandomizedSetReport, RowDownload, UnionBroadcast, decode_submodel_message

VECTOR_DIR = Path(__file__).resolve().parent / "vectors"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _vectorfile import write_or_check  # noqa: E402

CASES = [
    {
        "name": "id-sets",
        "description": "RandomizedSetReport and UnionBroadcast id sets: empty, one id, dense (k = 0), "
                       "sparse, and ids near 2^63.",
        "sets": [[], [0], [7], [0, 1, 2, 3, 5, 8, 13, 21], list(range(3, 4000, 16)),
                 [5, 10_000_000, 9_000_000_000_000_000_000]],
    },
    {
        "name": "row-download-float64",
        "description": "A RowDownload of party 3 in a sum over parties 1, 3, 4, 7, 9: three real rows and one "
                       "dense pseudo-row (universe 1000), float64 values (not exact in float32).",
        "party": 3,
        "parties": [1, 3, 4, 7, 9],
        "universe": 1000,
        "rows": [2, 40, 999],
        "dense_rows": 1,
        "shared": {"1": [0, 3], "4": [0, 1, 3], "7": [2, 3], "9": [3]},
        "width": 3,
        "values": [[0.1, -0.25, 1.0], [2.5, 0.3, 0.0], [-1e-3, 7.0, 0.5]],
        "dense": [0.2, 0.75],
    },
    {
        "name": "row-download-float32",
        "description": "The same plan with values that are all exact in float32: the values travel as float32.",
        "party": 3,
        "parties": [1, 3, 4, 7, 9],
        "universe": 1000,
        "rows": [2, 40, 999],
        "dense_rows": 1,
        "shared": {"1": [0, 3], "4": [0, 1, 3], "7": [2, 3], "9": [3]},
        "width": 3,
        "values": [[0.5, -0.25, 1.0], [2.5, 0.375, 0.0], [-0.125, 7.0, 0.5]],
        "dense": [0.25, 0.75],
    },
    {
        "name": "round-client-snapshot",
        "description": "Snapshots (type 12, spec 'Snapshot') of party 2 of a round over parties 1-4: created, "
                       "and after its RoundStart (sketch-sent; both sums' SecAggClient snapshots nested). "
                       "Randomness: DeterministicRandomness('submodel-snapshot/party-2').",
        "adversary": "semi-malicious",
    },
    {
        "name": "round-client-snapshot-malicious",
        "description": "The same round in malicious mode: the two sums advertised jointly, so both nested "
                       "snapshots are secagg type 19 (role, partner config, partner keys). Identities: "
                       "make_identities([1, 2, 3, 4], DeterministicRandomness('submodel-snapshot/identities')).",
        "adversary": "malicious",
    },
]


def _snapshot_case(case: dict) -> dict:
    """A client of a crafted RoundStart (fixed session ids: no server draws any), snapshotted."""
    from fedprivacy.hazmat.prg import DeterministicRandomness
    from fedprivacy.ldp import RRParameters
    from fedprivacy.psu.params import PSUParameters
    from fedprivacy.secagg import Adversary, make_identities
    from fedprivacy.submodel.client import DeviceState, SubmodelRoundClient
    from fedprivacy.submodel.demo import synthetic_workload
    from fedprivacy.submodel.messages import RoundStart
    from fedprivacy.submodel.reference import ReferenceTrainer
    from fedprivacy.submodel.settings import RoundSettings

    adversary = Adversary(case["adversary"])
    parties = [1, 2, 3, 4]
    settings = RoundSettings(universe=300, max_set_size=20, adversary=adversary).public()
    params = PSUParameters(300, min(4 * 20, 300), bytes(range(32)), 0)
    psu_config = SecAggConfig.create(parties, params.vector_length, Modulus.P61, adversary=adversary,
                                     session_id=bytes(range(32, 64)), round_index=5)
    rows_config = SecAggConfig.create(parties, 4, settings.modulus, full_graph=True, adversary=adversary,
                                      session_id=bytes(range(64, 96)), round_index=5)
    identity = trust = None
    if adversary is Adversary.MALICIOUS:
        identities, trust = make_identities(parties, DeterministicRandomness("submodel-snapshot/identities"))
        identity = identities[2]
    trainer = ReferenceTrainer(synthetic_workload(clients=4, universe=300, items_per_user=20, seed=3).clients[1])
    state = DeviceState.new(trainer, RRParameters.preset(2), identity=identity, trust=trust)
    client = SubmodelRoundClient(state, 2, random_bytes=DeterministicRandomness("submodel-snapshot/party-2"))
    created = client.snapshot()
    start = RoundStart(2, 5, settings, params, psu_config, rows_config)
    replies = client.receive(decode_submodel_message(start.to_bytes()))
    sketch_sent = client.snapshot()
    for data in (created, sketch_sent):
        assert SubmodelRoundClient.restore(data, state, 2).snapshot() == data
    return {"name": case["name"], "description": case["description"], "round_start": start.to_bytes().hex(),
            "replies": [reply.to_bytes().hex() for reply in replies],
            "snapshots": {"created": created.hex(), "sketch-sent": sketch_sent.hex()}}


def _download(case: dict) -> RowDownload:
    config = SecAggConfig.create(case["parties"], case["width"] + 1, Modulus.U64, full_graph=True, round_index=4,
                                 session_id=bytes(range(32)))
    rows = np.array(case["rows"] + [case["universe"] + j for j in range(case["dense_rows"])], dtype=np.uint64)
    shared = {int(peer): rows[np.array(positions, dtype=np.int64)] for peer, positions in case["shared"].items()}
    plan = ClientRowPlan(case["party"], case["width"] + 1, rows, shared)
    return RowDownload(case["party"], 4, config, plan, case["dense_rows"], np.array(case["values"], dtype=np.float64),
                       np.array(case["dense"], dtype=np.float64))


def run_case(case: dict) -> dict:
    if "adversary" in case:
        return _snapshot_case(case)
    if "sets" in case:
        encoded = []
        for ids in case["sets"]:
            values = np.array(ids, dtype=np.uint64)
            encoded.append({"ids": ids, "report": RandomizedSetReport(11, values, 4).to_bytes().hex(),
                            "union": UnionBroadcast(4, values).to_bytes().hex()})
        return {"name": case["name"], "description": case["description"], "messages": encoded}
    download = _download(case)
    data = download.to_bytes()
    again = decode_submodel_message(data)
    assert isinstance(again, RowDownload) and again.to_bytes() == data
    return {"name": case["name"], "description": case["description"], "row_download": data.hex(),
            "plan": download.plan.encode(case["parties"]).hex(),
            "sharing": {str(peer): positions.tolist() for peer, positions in again.plan.sharing()}}


def main(argv: list[str] | None = None) -> int:
    return write_or_check(CASES, run_case, VECTOR_DIR, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
