"""Attack: a server that proposes negligible noise, colluding with one client (protocols/ddp/spec.md §1, §4).

The harness: three clients; the corrupt one (colluding with the server) trains nothing, uploads no
noise and tells the server so; the victim's rows are then summed with nothing unknown but the
victim's own noise. The server proposes ``noise_multiplier = 1e-6``. Against a weakened victim (no
noise of its own) the server reads the victim's row updates off the applied averages; against the
real victim (its policy's minimum multiplier, counting the colluder) it does not.
"""

from __future__ import annotations

import numpy as np

from fedprivacy.submodel.interfaces import TrainingResult
from fedprivacy.ddp import DDPPolicy, DDPSettings
from fedprivacy.ddp.client import clip_and_round, to_modulus
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.ldp import RRParameters
from fedprivacy.policy import ClientPolicy
from fedprivacy.submodel.demo import init_model
from fedprivacy.submodel.client import DeviceState, SubmodelRoundClient
from fedprivacy.submodel.reference import ReferenceModel
from fedprivacy.submodel.server import SubmodelRoundServer
from fedprivacy.submodel.settings import RoundSettings
from fedprivacy.submodel.stages import RoundServerStage
from tests.helpers import drive_round

UNIVERSE, WIDTH = 64, 3
VICTIM, BYSTANDER, CORRUPT = 1, 2, 3
SHARED = np.arange(0, 40, dtype=np.uint64)  # the victim's and the colluder's rows


class Trainer:
    def __init__(self, client_id: int, ids: np.ndarray, zero: bool) -> None:
        self.client_id, self.ids, self.zero = client_id, ids, zero

    def index_set(self) -> np.ndarray:
        return self.ids

    def train(self, row_ids, rows, dense) -> TrainingResult:  # noqa: ANN001
        width = rows.shape[1]
        deltas = np.zeros((row_ids.shape[0], width)) if self.zero else secret_deltas(row_ids, width)
        counts = np.zeros(row_ids.shape[0]) if self.zero else np.ones(row_ids.shape[0])
        return TrainingResult(row_ids, deltas, counts, np.zeros(dense.shape[0]), 0 if self.zero else 1)


def secret_deltas(row_ids: np.ndarray, width: int) -> np.ndarray:
    """The victim's private update: what the server tries to learn."""
    return np.sin(np.outer(row_ids.astype(float) + 1, np.arange(1, width + 1))) * 0.05


class CapturingServer(ReferenceModel):
    def __init__(self, *args) -> None:  # noqa: ANN002
        super().__init__(*args)
        self.applied: dict[int, np.ndarray] = {}

    def apply_row_updates(self, ids, mean_deltas) -> None:  # noqa: ANN001
        self.applied.update({int(i): np.array(d) for i, d in zip(ids, mean_deltas)})
        super().apply_row_updates(ids, mean_deltas)


def _corrupt(client: SubmodelRoundClient) -> None:
    """The colluder: clips and quantizes like everybody but adds no noise and records no charge."""
    def no_noise(values, weights, dense_rows, config):  # noqa: ANN001, ANN202
        settings = client._settings
        rounded = clip_and_round(values, weights, settings.clip, settings.ddp, random_bytes=client._random_bytes)
        return to_modulus(rounded, settings.modulus).reshape(-1)

    client._privatize = no_noise


def _attack(victim_policy: ClientPolicy) -> float:
    """Fraction of the victim's rows whose update the server reads within 0.01 of the truth."""
    ids = {VICTIM: SHARED, BYSTANDER: np.arange(40, 60, dtype=np.uint64), CORRUPT: SHARED}
    rr = RRParameters("1", "0", "1", "0", allow_insecure=True)  # the plan = the real sets (the index layer is not attacked here)
    base = ClientPolicy(rr_parameters=rr, allow_insecure=True)
    states = {p: DeviceState.new(Trainer(p, ids[p], zero=p == CORRUPT), rr, policy=base) for p in ids}
    states[VICTIM].policy = victim_policy.replace(rr_parameters=rr, allow_insecure=True)
    server_model = CapturingServer(*init_model(np.arange(UNIVERSE, dtype=np.uint64), WIDTH, seed=1))
    settings = RoundSettings(universe=UNIVERSE, max_set_size=40, min_choosers=2, max_samples=1, dropout_fraction=0.01,
                             corrupt_fraction=0.01, ddp=DDPSettings(4.0, 1e-6, 1 << 14))
    server = SubmodelRoundServer(server_model, settings, sorted(states), 0)
    parties = {p: SubmodelRoundClient(s, p, random_bytes=DeterministicRandomness(f"attack-{p}")) for p, s in states.items()}
    _corrupt(parties[CORRUPT])
    drive_round(server, parties)
    assert server.stage is RoundServerStage.COMPLETED
    truth = secret_deltas(SHARED, server_model.row_width)
    hits = [np.abs(server_model.applied[int(r)] - truth[i]).max() < 0.01
            if int(r) in server_model.applied else False for i, r in enumerate(SHARED)]
    return float(np.mean(hits))


def test_negligible_proposed_noise_exposes_a_weakened_client():
    weakened = ClientPolicy(ddp=DDPPolicy(minimum_noise_multiplier=0.0, colluders=0))
    assert _attack(weakened) > 0.9  # the server reads the victim's rows


def test_the_real_client_adds_its_own_minimum_noise_and_the_attack_fails():
    real = ClientPolicy(ddp=DDPPolicy(minimum_noise_multiplier=1.0, colluders=1))
    assert _attack(real) < 0.1
