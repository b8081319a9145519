"""Flower adapters (``flwr>=1.42,<1.43``; install the ``flower`` extra). The only code in fedprivacy
that imports ``flwr``.

**Drop-in SecAgg+.** A Flower app that uses Flower's SecAgg+ switches to fedprivacy's by changing two
imports::

    # from flwr.server.workflow import SecAggPlusWorkflow
    from fedprivacy.adapters.flower import SecAggPlusWorkflow
    # from flwr.client.mod import secaggplus_mod
    from fedprivacy.adapters.flower import secaggplus_mod

and keeps the rest: ``DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(num_shares=..., ...))`` on the
server, ``ClientApp(client_fn=..., mods=[secaggplus_mod])`` on the clients. Threat model and what
leaks: ``protocols/secagg/spec.md`` §1 and §8; what Flower adds is in :mod:`.workflow`.

**Secure submodel learning.** :class:`SecureSubmodelWorkflow` (ServerApp side) and
:class:`SecureSubmodelClient` / :func:`submodel_client_app` (ClientApp side) run the round of
:mod:`fedprivacy.submodel` over Flower's Message API; see :mod:`.submodel` and
``protocols/submodel/spec.md``.
"""

from __future__ import annotations

try:
    import flwr  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "fedprivacy.adapters.flower needs Flower: pip install 'fedprivacy[flower]' (flwr>=1.42,<1.43)"
    ) from exc

from .constants import RECORD_KEY_CONFIGS, RECORD_KEY_STATE, Key, Stage
from .mod import secaggplus_mod
from .submodel import (
    SUBMODEL_ACTION,
    SUBMODEL_MESSAGE_TYPE,
    SUBMODEL_RECORD,
    SecureSubmodelClient,
    SecureSubmodelWorkflow,
    SubmodelRoundFailed,
    submodel_client_app,
)
from .workflow import SecAggPlusWorkflow, SecAggRoundOutcome

__all__ = [
    "Key",
    "RECORD_KEY_CONFIGS",
    "RECORD_KEY_STATE",
    "SecAggRoundOutcome",
    "SUBMODEL_ACTION",
    "SUBMODEL_MESSAGE_TYPE",
    "SUBMODEL_RECORD",
    "SecAggPlusWorkflow",
    "SecureSubmodelClient",
    "SecureSubmodelWorkflow",
    "Stage",
    "SubmodelRoundFailed",
    "secaggplus_mod",
    "submodel_client_app",
]
