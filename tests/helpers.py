"""Shared test helpers: configs, inputs and the reference sum (independent of the field code)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np

from fedprivacy.hazmat.field import Modulus, dtype_of, modulus_value
from fedprivacy.policy import weakened_policy
from fedprivacy.secagg import SecAggConfig

SESSION = b"fedprivacy-tests-session-id-0001"


# These tests exercise the protocol's own rules on small hand-built configs (thresholds chosen for the
# dropouts under test, not for a semi-malicious server), so their clients opt out of the client policy.
# The policy itself is tested in tests/test_policy.py and tests/attacks/.
PROTOCOL_POLICY = weakened_policy()


def config(party_ids, dim=6, modulus=Modulus.U32, neighbours=None, threshold=3, round_index=0):
    party_ids = tuple(party_ids)
    return SecAggConfig(
        party_ids, dim, modulus, len(party_ids) - 1 if neighbours is None else neighbours, threshold, SESSION, round_index
    )


def random_inputs(cfg: SecAggConfig, seed: int = 0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)  # public test data
    high = modulus_value(cfg.modulus)
    return {
        p: np.array([int(v) % high for v in rng.integers(0, 1 << 63, cfg.dim, dtype=np.uint64)], dtype=dtype_of(cfg.modulus))
        for p in cfg.party_ids
    }


def plain_sum(inputs, parties, modulus: Modulus) -> list[int]:
    high = modulus_value(modulus)
    dim = len(next(iter(inputs.values())))
    return [sum(int(inputs[p][i]) for p in parties) % high for i in range(dim)]


ROOT = Path(__file__).resolve().parent.parent


def vector_generator(protocol: str) -> tuple[ModuleType, list[Path]]:
    """The protocol's vector generator (imported from its file) and its stored vector files."""
    spec = importlib.util.spec_from_file_location(f"{protocol}_vectors", ROOT / "protocols" / protocol / "generate_vectors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, sorted((ROOT / "protocols" / protocol / "vectors").glob("*.json"))


def budget_events(ledger):
    """The ledger's release and refusal lines (the lines that concern the budget), without the policy's
    bookkeeping lines (PSU attempts, lowered caps)."""
    return [event for event in ledger.events if event.kind in ("release", "refusal")]


def drive_round(server, clients, until=None):
    """Drive a :class:`~fedprivacy.submodel.server.SubmodelRoundServer` and its clients (party ->
    :class:`~fedprivacy.submodel.client.SubmodelRoundClient`) over the loopback transport, every message
    through its bytes, until the server reaches stage ``until`` (default: it completes or aborts; a
    :class:`~fedprivacy.errors.RoundAborted` from its close propagates). A client that raises is gone
    from then on. Returns the last outbound, not delivered."""
    from fedprivacy.loopback import InProcessHost, Loopback
    from fedprivacy.submodel.messages import decode_submodel_message
    from fedprivacy.submodel.stages import RoundServerStage

    host = InProcessHost({p: c.receive for p, c in clients.items()}, decode_submodel_message)
    link = Loopback(server, decode_submodel_message, host, clients, window=1)
    outbound = server.start()
    while server.stage is not until and server.stage not in (RoundServerStage.COMPLETED, RoundServerStage.ABORTED):
        link.exchange(outbound)
        outbound = link.close()
    return outbound
