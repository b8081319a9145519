"""Flower (flwr 1.42) adapters: install with ``pip install 'fedprivacy[flower]'``.

``submodel``: secure federated submodel learning as a ServerApp workflow
(:class:`SecureSubmodelWorkflow`) and a ClientApp handler (:class:`SecureSubmodelClient`,
:func:`submodel_client_app`).
"""

from .submodel import (
    SUBMODEL_ACTION,
    SUBMODEL_MESSAGE_TYPE,
    SUBMODEL_RECORD,
    SecureSubmodelClient,
    SecureSubmodelWorkflow,
    SubmodelRoundFailed,
    submodel_client_app,
)

__all__ = [
    "SUBMODEL_ACTION",
    "SUBMODEL_MESSAGE_TYPE",
    "SUBMODEL_RECORD",
    "SecureSubmodelClient",
    "SecureSubmodelWorkflow",
    "SubmodelRoundFailed",
    "submodel_client_app",
]
