"""The secure submodel round: PSU -> randomized response -> per-row secure aggregation.

Re-exports the protocol. The parties are sans-I/O: :class:`SubmodelRoundServer` drives a round over
the model owner's :class:`SubmodelServer`, one :class:`SubmodelRoundClient` per data holder over its
:class:`ClientState` (its :class:`SubmodelClient` trainer, randomized-response parameters, ledger,
memo, policy and an injected :class:`StateStore`); :class:`RoundSettings` are the server's public
choices. :func:`run_round` is the in-process engine (the embedded default transport) that runs them
with N clients in one process, :class:`RoundDrops` scripts dropouts and :class:`RoundOutcome` is what
it returns. Threat model, messages and leakage: ``protocols/submodel/spec.md``.

The synthetic workload, the reference numpy click model and the plaintext baseline that the demo,
the benches and the tests use are in :mod:`fedprivacy.submodel.demo`.
"""

from .client import ClientState, PersistentStore, StateStore, SubmodelRoundClient, check_training_result
from .engine import RoundDrops, RoundOutcome, run_round
from .interfaces import SubmodelClient, SubmodelServer, TrainingResult
from .messages import PublicSettings
from .server import Outbound, RoundResult, SubmodelRoundServer
from .settings import RoundSettings
from .stages import RoundClientStage, RoundServerStage

__all__ = [
    # the parties and their settings
    "SubmodelRoundClient",
    "SubmodelRoundServer",
    "RoundSettings",
    "PublicSettings",
    "ClientState",
    "StateStore",
    "PersistentStore",
    "Outbound",
    "RoundResult",
    "RoundClientStage",
    "RoundServerStage",
    "check_training_result",
    # the interfaces a model and a trainer implement
    "SubmodelServer",
    "SubmodelClient",
    "TrainingResult",
    # the in-process engine
    "run_round",
    "RoundDrops",
    "RoundOutcome",
]
