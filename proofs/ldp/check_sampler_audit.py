"""Check for claim ldp/2 (see claim-2-sampler-audit.md): seeded audit plus mutation checks."""

from __future__ import annotations

import numpy as np

from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.hazmat.sampling import bernoulli, common_denominator
from fedprivacy.ldp import PermanentMemo, RRParameters, epsilon_after_reports, randomize
from proofs.audit import audit_counts

CLAIMED = RRParameters.preset(4)
N = 1_000_000
ALPHA = 1e-6
UNION = np.arange(N, dtype=np.uint64)


def _production(params: RRParameters, held: bool, seed: str) -> int:
    result = randomize(params, PermanentMemo.empty("audit", params), UNION, UNION if held else [],
                       random_bytes=DeterministicRandomness(seed))
    return int(result.chosen_ids.shape[0])


def _swapped_coins(params: RRParameters, held: bool, seed: str) -> int:
    """Mutant: the instantaneous layer uses p4 for a permanent yes and p3 for a permanent no."""
    rand = DeterministicRandomness(seed)
    b = common_denominator([params.p1, params.p2, params.p3, params.p4])
    first = np.full(N, int((params.p1 if held else params.p2) * b), dtype=np.uint64)
    permanent = bernoulli(first, b, rand)
    second = np.where(permanent, np.uint64(int(params.p4 * b)), np.uint64(int(params.p3 * b)))
    return int(bernoulli(second, b, rand).sum())


def _audit(sampler, params_used=CLAIMED):
    yes_in = sampler(params_used, True, "audit-in")
    yes_out = sampler(params_used, False, "audit-out")
    return audit_counts(yes_in, N, yes_out, N, CLAIMED.epsilon_1, float(CLAIMED.p5), float(CLAIMED.p6), ALPHA)


def test_production_sampler_passes():
    result = _audit(_production)
    assert not result.violation, result
    assert 0.45 < result.epsilon_lower_bound <= CLAIMED.epsilon_1  # the audit has power at this N


def test_audit_flags_a_bit_never_flipped_to_zero():
    broken = RRParameters("1", CLAIMED.p2, "1", CLAIMED.p4, allow_insecure=True)
    result = _audit(_production, broken)
    assert result.violation and result.epsilon_lower_bound > CLAIMED.epsilon_1


def test_audit_flags_swapped_coins():
    result = _audit(_swapped_coins)
    assert result.violation and not result.rates_consistent


def _longitudinal(params: RRParameters, held: bool, seed: str, fresh_memo: bool, rounds: int = 30, n: int = 200_000):
    union = UNION[:n]
    rand = DeterministicRandomness(seed)
    memo = PermanentMemo.empty("audit", params)
    ones = np.zeros(n, dtype=np.int64)
    for _ in range(rounds):
        start = PermanentMemo.empty("audit", params) if fresh_memo else memo
        result = randomize(params, start, union, union if held else [], random_bytes=rand)
        memo = result.memo
        ones[np.searchsorted(union, result.chosen_ids)] += 1
    return int(np.count_nonzero(ones > rounds // 2)), n


def _longitudinal_audit(fresh_memo: bool):
    yes_in, n = _longitudinal(CLAIMED, True, "long-in", fresh_memo)
    yes_out, _ = _longitudinal(CLAIMED, False, "long-out", fresh_memo)
    claimed = epsilon_after_reports(CLAIMED, 30)
    return audit_counts(yes_in, n, yes_out, n, claimed, yes_in / n, yes_out / n, ALPHA)


def test_memoized_reports_stay_within_epsilon_inf():
    result = _longitudinal_audit(fresh_memo=False)
    assert result.epsilon_lower_bound <= CLAIMED.epsilon_inf


def test_audit_flags_a_memo_redrawn_every_round():
    result = _longitudinal_audit(fresh_memo=True)
    assert result.epsilon_lower_bound > CLAIMED.epsilon_inf
