"""Check for claim ddp/4 (see claim-4-release-audit.md): seeded end-to-end audit plus mutation checks."""

from __future__ import annotations

import math

import numpy as np

from fedprivacy.ddp import DDPSettings, client_variance, release_rho, reported_epsilon
from fedprivacy.ddp.client import clip_and_round
from fedprivacy.hazmat.discrete_gaussian import discrete_gaussian_table
from fedprivacy.hazmat.field import Modulus
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.secagg.quantize import Quantizer

from proofs.audit import clopper_pearson

SETTINGS = DDPSettings(l2_clip=1.0, noise_multiplier=1.0, sensitivity=64)
FLOOR = 2  # noise contributors the row is sure to have
DELTA = 1e-3
ALPHA = 1e-6
SELECT, CERTIFY = 200_000, 1_000_000
NEIGHBOUR = (np.array([[3.0]]), np.array([1.0]))  # a client whose raw upload is far above the clip
EMPTY = (np.array([[0.0]]), np.array([0.0]))
VARIANCE = client_variance(SETTINGS, FLOOR)
CLAIMED = reported_epsilon(release_rho(SETTINGS.sensitivity, [(VARIANCE, FLOOR, 2)]), DELTA, 4 * 2.0**-107)


def _upload(values, weights, seed, clip=True):
    if clip:  # the production path
        return clip_and_round(values, weights, 10.0, SETTINGS, random_bytes=DeterministicRandomness(seed))
    # mutant: quantized at the same scale, never L2-clipped
    quantizer = Quantizer(Modulus.U64, 10.0, 1, max_weight=1.0, scale=SETTINGS.scale)
    return quantizer.encode_rows(values, weights, random_bytes=DeterministicRandomness(seed)).view(np.int64)


def _releases(upload, count, seed, variance=VARIANCE):
    """The row sum's statistic (sum of its two coordinates) over ``count`` independent rounds: the
    audited client's upload plus FLOOR clients' production noise on each coordinate."""
    noise = discrete_gaussian_table(variance, count * FLOOR * 2, DeterministicRandomness(seed)).reshape(count, FLOOR * 2)
    return int(upload.sum()) + noise.sum(axis=1)


def _epsilon_lb(neighbour, empty, threshold):
    hits_n, hits_e = int((neighbour > threshold).sum()), int((empty > threshold).sum())
    lower_n, _ = clopper_pearson(hits_n, neighbour.size, ALPHA)
    _, upper_e = clopper_pearson(hits_e, empty.size, ALPHA)
    if lower_n - DELTA <= 0:
        return -math.inf
    return math.log((lower_n - DELTA) / upper_e)


def audit(variance=VARIANCE, clip=True, tag="production"):
    """epsilon lower bound certified on fresh samples at the threshold chosen on a selection half."""
    neighbour_upload, empty_upload = _upload(*NEIGHBOUR, f"{tag}/n", clip), _upload(*EMPTY, f"{tag}/e", clip)
    sigma = math.sqrt(2 * FLOOR * VARIANCE)  # the designed spread of the statistic
    grid = [k * sigma / 2 for k in range(13)]
    pick_n = _releases(neighbour_upload, SELECT, f"{tag}/select-n", variance)
    pick_e = _releases(empty_upload, SELECT, f"{tag}/select-e", variance)
    threshold = max(grid, key=lambda c: _epsilon_lb(pick_n, pick_e, c))
    cert_n = _releases(neighbour_upload, CERTIFY, f"{tag}/certify-n", variance)
    cert_e = _releases(empty_upload, CERTIFY, f"{tag}/certify-e", variance)
    return _epsilon_lb(cert_n, cert_e, threshold)


def test_production_release_passes():
    lb = audit()
    assert lb <= CLAIMED, f"epsilon lower bound {lb:.3f} exceeds the claimed {CLAIMED:.3f}"
    assert lb > 1.0  # the audit has power: it sees a real fraction of the claimed loss


def test_a_sampler_with_the_wrong_scale_is_caught():
    lb = audit(variance=VARIANCE // 4, tag="wrong-scale")  # noise standard deviation halved
    assert lb > CLAIMED, f"wrong-scale mutant not caught: {lb:.3f} <= {CLAIMED:.3f}"


def test_a_client_that_skips_clipping_is_caught():
    lb = audit(clip=False, tag="no-clip")
    assert lb > CLAIMED, f"unclipped mutant not caught: {lb:.3f} <= {CLAIMED:.3f}"
