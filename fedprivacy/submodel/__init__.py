"""The secure submodel round: PSU -> randomized response -> per-row secure aggregation.

Re-exports the protocol. The parties are sans-I/O: :class:`SubmodelRoundServer` drives a round over
the model owner's :class:`GlobalModel`, one :class:`SubmodelRoundClient` per data holder over its
:class:`DeviceState` (its :class:`LocalTrainer` trainer, randomized-response parameters, ledger,
memo, policy and an injected :class:`StateStore`); :class:`RoundSettings` are the server's public
choices. :func:`run_round` is the in-process engine (the embedded default transport) that runs them
with N clients in one process, :class:`RoundDrops` scripts dropouts and :class:`SubmodelRoundOutcome` is what
it returns. Threat model, messages and leakage: ``protocols/submodel/spec.md``.

The synthetic workload, the reference numpy click model and the plaintext baseline that the demo,
the benches and the tests use are in :mod:`fedprivacy.submodel.demo`.
"""

from .client import DeviceState, PersistentStore, StateStore, SubmodelRoundClient, check_training_result
from .engine import RoundDrops, SubmodelRoundOutcome, run_round
from .interfaces import GlobalModel, LocalTrainer, TrainingResult
from .messages import PublicSettings
from .server import RoundResult, SubmodelOutbound, SubmodelRoundServer
from .settings import RoundSettings
from .stages import RoundClientStage, RoundServerStage

SubmodelServer = GlobalModel  # deprecated alias (the old name; use GlobalModel)
SubmodelClient = LocalTrainer  # deprecated alias (the old name; use LocalTrainer)
ClientState = DeviceState  # deprecated alias (the old name; use DeviceState)
Outbound = SubmodelOutbound  # deprecated alias (the old name; use SubmodelOutbound)

__all__ = [
    # the parties and their settings
    "SubmodelRoundClient",
    "SubmodelRoundServer",
    "RoundSettings",
    "PublicSettings",
    "DeviceState",
    "StateStore",
    "PersistentStore",
    "SubmodelOutbound",
    "RoundResult",
    "RoundClientStage",
    "RoundServerStage",
    "check_training_result",
    # the interfaces a model and a trainer implement
    "GlobalModel",
    "LocalTrainer",
    "TrainingResult",
    # the in-process engine
    "run_round",
    "RoundDrops",
    "SubmodelRoundOutcome",
]
