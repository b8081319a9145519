"""Distributed differential privacy for the updates: clip, quantize, exact discrete Gaussian noise.

Specification: ``protocols/ddp/spec.md``. :mod:`.params` holds the public settings, the per-row
calibration and the zCDP arithmetic; :mod:`.client` the client's clipping and noising.
"""

from .client import NoisePlan, check_overflow, clip_factor, privatize, to_modulus
from .params import (
    DDPPolicy,
    DDPSettings,
    client_variance,
    epsilon_from_rho,
    kls_tau,
    noise_floor,
    noise_multiplier_for,
    release_rho,
    reported_epsilon,
    rho_for_epsilon,
    zcdp_rho,
)

__all__ = [
    "DDPPolicy",
    "DDPSettings",
    "NoisePlan",
    "check_overflow",
    "client_variance",
    "clip_factor",
    "epsilon_from_rho",
    "kls_tau",
    "noise_floor",
    "noise_multiplier_for",
    "privatize",
    "release_rho",
    "reported_epsilon",
    "rho_for_epsilon",
    "to_modulus",
    "zcdp_rho",
]
