"""Check for claim ddp/3 (see claim-3-accountant.md): the ledger's update epsilon equals an independent computation."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from fedprivacy.accounting import Ledger, UpdateEvent, parse_ledger, replay
from fedprivacy.ddp import epsilon_from_rho, reported_epsilon

ROUNDS = [  # (sensitivity, row S, dense S, row floor, dense floor, row coordinates, dense coordinates)
    (4096, 8_388_608, 1_000_000, 2, 17, 310, 19),
    (4096, 4_194_304, 4_194_304, 4, 4, 100, 19),
    (256, 40_000, 9_000, 1, 9, 12, 3),
]


def _independent_rho(sensitivity, row_s, dense_s, row_floor, dense_floor, rows, dense):
    """Exact rational Delta^2 / (2 min(n S)); tau is below 10^-1000 for these S and is bounded separately."""
    binding = min(row_floor * row_s, dense_floor * dense_s)
    return Fraction(sensitivity**2, 2 * binding)


def test_ledger_replay_equals_independent_sum():
    ledger, header = Ledger.create("audited", math.inf)
    lines = [header]
    for index, (sensitivity, row_s, dense_s, row_floor, dense_floor, rows, dense) in enumerate(ROUNDS):
        draft = UpdateEvent("audited", index, "update-release", sensitivity=sensitivity, row_variance=row_s,
                            dense_variance=dense_s, row_floor=row_floor, dense_floor=dense_floor, row_coordinates=rows,
                            dense_coordinates=dense, delta=1e-6)
        lines.append(ledger.append(UpdateEvent(**{**draft.to_dict(), "rho": draft.charged()})))
    budget = replay(parse_ledger(lines))
    exact = sum(_independent_rho(*r) for r in ROUNDS)
    assert budget.update_rho >= float(exact)  # never below the exact value
    assert budget.update_rho == pytest.approx(float(exact), rel=1e-9)
    log = math.log(1 / 5e-7)  # reports convert at delta / 2; the other half covers the table sampler
    independent_epsilon = float(exact) + 2 * math.sqrt(float(exact) * log)
    coordinates = sum(r[5] + r[6] for r in ROUNDS)
    assert (1 + math.exp(independent_epsilon)) * coordinates * 2.0**-107 <= 5e-7
    assert budget.update_epsilon() >= independent_epsilon
    assert budget.update_epsilon() == pytest.approx(independent_epsilon, rel=1e-9)


def test_conversion_agrees_with_opendp():
    """OpenDP 0.16 (tests only): its discrete Gaussian's rho equals ours; its zCDP -> (eps, delta)
    conversion (the tighter one) never exceeds our reported epsilon."""
    dp = pytest.importorskip("opendp.prelude")
    dp.enable_features("contrib")
    space = dp.atom_domain(T=int), dp.absolute_distance(T=int)
    for scale in (2.0, 8.0, 64.0):
        meas = space >> dp.m.then_gaussian(scale=scale)
        for sensitivity in (1, 3):
            rho = meas.map(sensitivity)
            assert rho == pytest.approx(sensitivity**2 / (2 * scale**2), rel=1e-12)
            curve = dp.c.make_zCDP_to_approxDP(meas).map(sensitivity)
            for delta in (1e-4, 1e-6, 1e-9):
                assert curve.epsilon(delta) <= epsilon_from_rho(rho, delta) <= reported_epsilon(rho, delta)
