"""Local differential privacy for index sets: the double randomized response of secure federated
submodel learning, its exact epsilon maps, the permanent-answer memo and frequency estimators."""

from .estimators import estimate_holders, estimate_variance, lifetime_variance_floor
from .mechanism import RandomizedSet, randomize
from .memo import PermanentMemo
from .params import (
    CPP_PRESETS,
    NeighbourRelation,
    RRParameters,
    epsilon_after_reports,
    epsilon_after_reports_by_enumeration,
    scale_for_relation,
    theorem_5_5_probabilities,
)
from .settings import RRSettingNames, rr_parameters_from_settings

__all__ = [
    "CPP_PRESETS",
    "NeighbourRelation",
    "PermanentMemo",
    "RRParameters",
    "RRSettingNames",
    "RandomizedSet",
    "epsilon_after_reports",
    "epsilon_after_reports_by_enumeration",
    "estimate_holders",
    "estimate_variance",
    "lifetime_variance_floor",
    "randomize",
    "rr_parameters_from_settings",
    "scale_for_relation",
    "theorem_5_5_probabilities",
]
