"""Secure aggregation (Bonawitz et al. CCS'17; SecAgg+ of Bell et al. CCS'20), sans-I/O."""

from ..hazmat.field import Modulus
from .client import SecAggClient
from .driver import DropoutSchedule, RoundReport, run_secagg_round
from .identity import Identity, TrustStore, make_identities
from .messages import decode_message
from .params import (
    Adversary,
    GraphParameters,
    SecAggConfig,
    check_graph_parameters,
    consistency_quorum,
    find_graph_parameters,
    majority_quorum,
    minimum_threshold,
)
from .policy import SecAggPolicy
from .quantize import Quantizer
from .rows import ClientRowPlan, RowPlan
from .server import SecAggOutbound, SecAggServer
from .stages import ClientStage, SecAggStep, ServerStage
from .unmasking import UnmaskingWorkers

__all__ = [
    "Adversary",
    "ClientRowPlan",
    "RowPlan",
    "ClientStage",
    "SecAggStep",
    "DropoutSchedule",
    "GraphParameters",
    "Identity",
    "Modulus",
    "SecAggOutbound",
    "Quantizer",
    "RoundReport",
    "SecAggClient",
    "SecAggConfig",
    "SecAggPolicy",
    "SecAggServer",
    "ServerStage",
    "TrustStore",
    "UnmaskingWorkers",
    "check_graph_parameters",
    "consistency_quorum",
    "decode_message",
    "find_graph_parameters",
    "majority_quorum",
    "make_identities",
    "minimum_threshold",
    "run_secagg_round",
]
