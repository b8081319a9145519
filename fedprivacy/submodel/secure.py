"""One secure submodel round, in process: the names the simulation, the benches and the tests use.

The round itself is the pair of sans-I/O parties in :mod:`fedprivacy.submodel.client` and
:mod:`fedprivacy.submodel.server` (stages in :mod:`fedprivacy.submodel.stages`, wire format in
:mod:`fedprivacy.submodel.messages`, spec in ``protocols/submodel/spec.md``); :func:`secure_round` is
the in-process engine of :mod:`fedprivacy.adapters.engine` that runs them with N clients in one process.
"""

from __future__ import annotations

from ..adapters.engine import RoundDrops, RoundOutcome, run_round
from .client import ClientState, check_training_result
from .settings import RoundSettings

__all__ = ["ClientState", "RoundSettings", "RoundDrops", "RoundOutcome", "secure_round", "check_training_result"]

secure_round = run_round
