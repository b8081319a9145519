"""Distributed DP for the updates: sampler, clipping, calibration, accounting, wiring (protocols/ddp/spec.md)."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedprivacy.accounting import Ledger, LedgerIntegrityError, UpdateEvent, parse_ledger, replay
from fedprivacy.ddp import (
    DDPPolicy,
    DDPSettings,
    NoisePlan,
    check_overflow,
    client_variance,
    epsilon_from_rho,
    noise_floor,
    reported_epsilon,
    noise_multiplier_for,
    privatize,
    release_rho,
    rho_for_epsilon,
    zcdp_rho,
)
from fedprivacy.ddp.client import clip_and_round, exact_squared_norm
from fedprivacy.errors import BudgetExceeded, DecodeError, InvalidParameters
from fedprivacy.hazmat.discrete_gaussian import (
    _EXP_HI,
    _EXP_LO,
    MAX_VARIANCE,
    acceptance_terms,
    bernoulli_exp,
    discrete_gaussian,
    discrete_gaussian_table,
    gaussian_table,
    uniform_below_each,
)
from fedprivacy.hazmat.field import Modulus
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.ldp import RRParameters
from fedprivacy.submodel.demo import init_model, synthetic_workload
from fedprivacy.submodel.client import DeviceState, SubmodelRoundClient
from fedprivacy.submodel.messages import PublicSettings, RoundStart, decode_submodel_message
from fedprivacy.submodel.reference import ReferenceModel, ReferenceTrainer
from fedprivacy.submodel.server import SubmodelRoundServer
from fedprivacy.submodel.settings import RoundSettings
from fedprivacy.submodel.stages import RoundClientStage, RoundServerStage
from proofs.ddp.reference import _TABLE
from proofs.ddp.reference import discrete_gaussian as reference_gaussian

from .helpers import drive_round, vector_generator

generator, VECTORS = vector_generator("ddp")


# -- the sampler -------------------------------------------------------------------------------------

@pytest.mark.parametrize("variance", [1, 2, 3, 7, 100, 12345, MAX_VARIANCE])
def test_one_sample_equals_the_scalar_reference_from_the_same_bytes(variance):
    for i in range(40):
        seed = f"reference/{variance}/{i}"
        expected = reference_gaussian(DeterministicRandomness(seed), variance)
        assert int(discrete_gaussian(variance, 1, DeterministicRandomness(seed))[0]) == expected


def test_exp_expansion_table_equals_the_rational_series():
    assert [(int(h) << 64) | int(lo) for h, lo in zip(_EXP_HI, _EXP_LO)] == _TABLE


def test_uniform_below_each_rejects_exactly_the_top_words():
    bound = 3  # 2^64 mod 3 = 1: only the word 2^64 - 1 is rejected
    words = [(1 << 64) - 1, 7, (1 << 64) - 2]
    stream = b"".join(w.to_bytes(8, "little") for w in words)
    source = iter([stream[:16], stream[16:]])
    out = uniform_below_each(np.array([bound, bound], dtype=np.uint64), lambda n: next(source)[: n])
    # first pass: words[0] rejected (redrawn from words[2]), words[1] = 7 -> 1
    assert out.tolist() == [((1 << 64) - 2) % 3, 7 % 3]
    powers = uniform_below_each(np.array([1 << 63, 1], dtype=np.uint64), lambda n: b"\xff" * n)
    assert powers.tolist() == [(1 << 63) - 1, 0]  # powers of two never reject


def test_acceptance_terms_sum_to_the_gaussian_exponent_exactly():
    for variance in (1, 2, 5, 17, 1000):
        t = math.isqrt(variance) + 1
        ys = np.arange(-60 * t, 60 * t + 1, dtype=np.int64)
        terms = acceptance_terms(ys, variance, t)
        for index in range(0, ys.size, max(1, ys.size // 300)):
            y = int(ys[index])
            total = sum(Fraction(int(n[index]), int(d)) for n, d in terms)
            assert total == Fraction((abs(y) * t - variance) ** 2, 2 * variance * t * t)


def test_bernoulli_exp_frequencies():
    coins = bernoulli_exp(np.full(400_000, 10, dtype=np.uint64), 7, DeterministicRandomness("bexp"))
    p = math.exp(-10 / 7)
    assert abs(coins.mean() - p) < 6 * math.sqrt(p * (1 - p) / coins.size)  # false alarm < 1e-8


@pytest.mark.parametrize("variance", [1, 4, 50])
def test_discrete_gaussian_matches_its_pmf(variance):
    samples = discrete_gaussian(variance, 300_000, DeterministicRandomness(f"pmf/{variance}"))
    support = np.arange(-12 * math.isqrt(variance) - 12, 12 * math.isqrt(variance) + 13)
    weights = np.exp(-(support.astype(float) ** 2) / (2 * variance))
    pmf = weights / weights.sum()
    counts = np.array([(samples == x).sum() for x in support])
    keep = pmf * samples.size >= 20
    expected = pmf[keep] * samples.size
    chi2 = float((((counts[keep] - expected) ** 2) / expected).sum())
    dof = int(keep.sum()) - 1
    # Wilson-Hilferty: chi2 above dof + 7 sqrt(2 dof) has probability < 1e-6 for these dof.
    assert chi2 < dof + 7 * math.sqrt(2 * dof)
    assert samples.size == 300_000 and samples.dtype == np.int64


@pytest.mark.parametrize("variance", [1, 2, 3, 5, 50])
def test_table_entries_equal_an_independent_high_precision_computation(variance):
    import decimal

    hi, lo, limit = gaussian_table(variance)
    with decimal.localcontext() as context:
        context.prec = 120
        weights = [(-decimal.Decimal(x * x) / (2 * variance)).exp() for x in range(-limit, limit + 1)]
        total = sum(weights)
        running = decimal.Decimal(0)
        for k in range(2 * limit):
            running += weights[k]
            expected = int(running / total * (decimal.Decimal(2) ** 128))
            assert (int(hi[k]) << 64) | int(lo[k]) == expected


@pytest.mark.parametrize("variance", [1, 4, 50, 12345])
def test_table_sampler_matches_its_pmf_and_the_rejection_sampler(variance):
    table = discrete_gaussian_table(variance, 300_000, DeterministicRandomness(f"table/{variance}"))
    exact = discrete_gaussian(variance, 300_000, DeterministicRandomness(f"table-exact/{variance}"))
    for samples in (table, exact):
        assert abs(samples.astype(float).var() / variance - 1) < 6 * math.sqrt(2 / samples.size) + 1e-3
    if variance <= 50:
        support = np.arange(-12 * math.isqrt(variance) - 12, 12 * math.isqrt(variance) + 13)
        weights = np.exp(-(support.astype(float) ** 2) / (2 * variance))
        expected = weights / weights.sum() * table.size
        counts = np.bincount(table - support[0], minlength=support.size)[: support.size]
        keep = expected >= 20
        chi2 = float((((counts[keep] - expected[keep]) ** 2) / expected[keep]).sum())
        dof = int(keep.sum()) - 1
        assert chi2 < dof + 7 * math.sqrt(2 * dof)


def test_table_sampler_resolves_first_word_ties_with_a_second_word():
    hi, lo, limit = gaussian_table(3)
    k = limit  # the entry for x = 0
    u1 = int(hi[k])
    below = b"".join(v.to_bytes(8, "little") for v in (u1, int(lo[k]) - 1))
    above = b"".join(v.to_bytes(8, "little") for v in (u1, int(lo[k]) + 1))
    tie = b"".join(v.to_bytes(8, "little") for v in (u1, int(lo[k])))
    assert int(discrete_gaussian_table(3, 1, _stream(below))[0]) == k - limit
    assert int(discrete_gaussian_table(3, 1, _stream(above))[0]) == k + 1 - limit
    with pytest.raises(InvalidParameters):
        discrete_gaussian_table(3, 1, _stream(tie))


def _stream(data: bytes):
    position = [0]

    def source(n):
        chunk = data[position[0] : position[0] + n]
        position[0] += n
        return chunk

    return source


def test_sampler_rejects_bad_parameters():
    for variance in (0, -1, MAX_VARIANCE + 1, 2.5, True):
        with pytest.raises(InvalidParameters):
            discrete_gaussian(variance, 3)
    with pytest.raises(InvalidParameters):
        discrete_gaussian(4, -1)
    assert discrete_gaussian(4, 0).shape == (0,)


def test_every_case_has_a_vector_file():
    assert sorted(p.stem for p in VECTORS) == sorted(case["name"] for case in generator.CASES)


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_vector_replay(path):
    stored = json.loads(path.read_text())
    case = next(c for c in generator.CASES if c["name"] == stored["name"])
    assert generator.run_case(case)["expected"] == stored["expected"]
    # the recorded bytes alone reproduce it (no deterministic generator needed)
    raw = bytes.fromhex(stored["expected"]["random_hex"])
    position = 0

    def replayed(size):
        nonlocal position
        chunk = raw[position : position + size]
        position += size
        assert len(chunk) == size
        return chunk

    sampler = {"gaussian": discrete_gaussian, "table": discrete_gaussian_table}.get(case["kind"])
    if sampler is not None:
        assert sampler(case["variance"], case["count"], replayed).tolist() == stored["expected"]["output"]
        assert position == len(raw)


# -- clipping and calibration ------------------------------------------------------------------------

@given(
    rows=st.integers(1, 12), width=st.integers(1, 6), magnitude=st.floats(1e-3, 1e3), seed=st.integers(0, 2**32),
    sensitivity=st.sampled_from([64, 256, 4096]), l2_clip=st.floats(0.01, 100),
)
def test_clipped_upload_never_exceeds_the_sensitivity(rows, width, magnitude, seed, sensitivity, l2_clip):
    rng = np.random.default_rng(seed)  # test data only, not secrets
    values = rng.normal(size=(rows, width)) * magnitude
    weights = rng.uniform(0, 1, size=rows)
    settings = DDPSettings(l2_clip, 1.0, sensitivity)
    if sensitivity <= 2 * math.sqrt(rows * (width + 1)):
        with pytest.raises(InvalidParameters):
            clip_and_round(values, weights, 10.0, settings, random_bytes=DeterministicRandomness(str(seed)))
        return
    out = clip_and_round(values, weights, 10.0, settings, random_bytes=DeterministicRandomness(str(seed)))
    assert exact_squared_norm(out) <= sensitivity**2
    # each row keeps its ratio value / weight up to rounding (one factor for the whole upload)
    assert out.shape == (rows, width + 1)


def test_a_small_upload_is_not_scaled():
    settings = DDPSettings(1.0, 1.0, 1 << 12)
    values, weights = np.array([[0.25, -0.5]]), np.array([0.5])
    out = clip_and_round(values, weights, 1.0, settings, random_bytes=DeterministicRandomness("small"))
    assert out.tolist() == [[512, -1024, 2048]]  # exact at scale 4096


@given(
    min_choosers=st.integers(1, 200), clients=st.integers(2, 300), dropped=st.integers(0, 300),
    colluders=st.integers(0, 20), z=st.floats(0.01, 20), sensitivity=st.sampled_from([16, 256, 4096]),
    minimum=st.floats(0, 5), extra=st.integers(0, 500),
)
def test_calibration_never_below_target_for_any_allowed_chooser_count(min_choosers, clients, dropped, colluders, z,
                                                                        sensitivity, minimum, extra):
    threshold = max(1, clients - dropped)
    floor = noise_floor(min_choosers, clients, threshold, colluders)
    settings = DDPSettings(1.0, z, sensitivity)
    try:
        variance = client_variance(settings, floor, minimum)
    except InvalidParameters:
        assert Fraction(max(z, minimum)) ** 2 * sensitivity**2 / floor > MAX_VARIANCE
        return
    target = Fraction(max(z, minimum)) ** 2 * sensitivity**2
    # the contributors a row is sure to have: choosers less dropouts less colluders, at least the floor
    for contributors in {floor, floor + 1, floor + extra}:
        assert contributors * variance >= target
    # and the charged rho never understates the floor's Gaussian rho
    assert zcdp_rho(sensitivity, variance, floor, 10) >= sensitivity**2 / (2 * floor * variance)


def test_privatize_adds_noise_of_the_planned_variances():
    settings = DDPSettings(1.0, 1.0, 1 << 10)
    values = np.zeros((4000, 3))
    weights = np.zeros(4000)
    out = privatize(values, weights, 1000, 1.0, settings, NoisePlan(400, 25), random_bytes=DeterministicRandomness("var"))
    assert abs(out[:3000].var() / 400 - 1) < 0.05 and abs(out[3000:].var() / 25 - 1) < 0.05


def test_overflow_check_refuses_settings_that_could_wrap():
    check_overflow(Modulus.U64, 1000, 1 << 12, 1 << 30, 10**7)
    with pytest.raises(InvalidParameters):
        check_overflow(Modulus.U32, 3000, 1 << 20, 1 << 30, 10**6)
    with pytest.raises(InvalidParameters):
        check_overflow(Modulus.U32, 600_000, 1 << 12, 1 << 20, 10**6)
    # the signal alone fits below 2^31; the noise tails decide
    sensitivity = (1 << 21) - (1 << 12)
    check_overflow(Modulus.U32, 1024, sensitivity, 1, 10**6)
    with pytest.raises(InvalidParameters):
        check_overflow(Modulus.U32, 1024, sensitivity, 1 << 30, 10**6)


# -- accounting ---------------------------------------------------------------------------------------

def test_zcdp_arithmetic():
    assert zcdp_rho(10, 100, 1, 5) == pytest.approx(0.5, rel=1e-9)
    assert zcdp_rho(10, 25, 4, 5) >= 0.5
    eps = epsilon_from_rho(0.5, 1e-6)
    assert eps == pytest.approx(0.5 + 2 * math.sqrt(0.5 * math.log(1e6)), rel=1e-9)
    assert epsilon_from_rho(rho_for_epsilon(1.0, 1e-5), 1e-5) <= 1.0
    z = noise_multiplier_for(1.0, 1e-5)
    assert reported_epsilon(1 / (2 * z * z), 1e-5) <= 1.0
    assert reported_epsilon(0.5, 1e-6) == epsilon_from_rho(0.5, 5e-7)
    assert reported_epsilon(0.5, 1e-6, total_variation=1e-7) == math.inf  # the table's distance must fit in delta / 2
    # the dense part with more contributors but less noise each: the smaller n S binds
    assert release_rho(64, [(100, 1, 10), (10, 20, 10)]) == pytest.approx(64**2 / 200, rel=1e-6)


def test_accountant_agrees_with_opendp():
    dp = pytest.importorskip("opendp.prelude")
    dp.enable_features("contrib")
    for scale in (3.0, 10.0, 40.0):
        space = dp.atom_domain(T=int), dp.absolute_distance(T=int)
        meas = space >> dp.m.then_gaussian(scale=scale)
        # OpenDP's discrete Gaussian rho for sensitivity 1 = ours for variance scale^2, one contributor
        assert meas.map(1) == pytest.approx(zcdp_rho(1, int(scale * scale), 1, 1), rel=1e-9)
        # OpenDP's zCDP -> (eps, delta) conversion is tighter; ours must never be below it
        approx = dp.c.make_zCDP_to_approxDP(meas).map(1)
        for delta in (1e-5, 1e-8):
            assert epsilon_from_rho(meas.map(1), delta) >= approx.epsilon(delta)


def _update_event(client_id="c", round_index=0, rho=None, **overrides):
    fields = dict(sensitivity=256, row_variance=4000, dense_variance=900, row_floor=2, dense_floor=9,
                  row_coordinates=30, dense_coordinates=6, delta=1e-6)
    fields.update(overrides)
    event = UpdateEvent(client_id, round_index, "update-release", rho=0.0, **fields)
    return UpdateEvent(client_id, round_index, "update-release", rho=event.charged() if rho is None else rho, **fields)


def test_update_events_round_trip_through_the_ledger_and_compose():
    ledger, header = Ledger.create("c", math.inf)
    lines = [header, ledger.append(_update_event()), ledger.append(_update_event(round_index=1)),
             ledger.append(UpdateEvent("c", 2, "update-refusal"))]
    parsed = parse_ledger(lines)
    budget = replay(parsed)
    rho = _update_event().charged()
    assert budget.update_releases == 2 and budget.update_refusals == 1
    assert budget.update_rho == pytest.approx(2 * rho, rel=1e-12)
    assert budget.update_epsilon() == reported_epsilon(budget.update_rho, 1e-6, budget.update_total_variation)
    assert budget.update_total_variation == 2 * 36 * 2.0**-107
    assert budget.spent() == 0.0  # the index epsilon is untouched


def test_an_edited_update_charge_is_refused():
    ledger, header = Ledger.create("c", math.inf)
    ledger.append(_update_event(rho=1e-9))  # a line claiming less than its parameters give
    line = ledger.append(_update_event())
    bad_ledger, bad_header = Ledger.create("c", math.inf)
    with pytest.raises(LedgerIntegrityError):
        parse_ledger([bad_header, bad_ledger.append(_update_event(rho=1e-9))])
    assert line  # a well-formed line still appends
    with pytest.raises(DecodeError):
        UpdateEvent.from_dict({**_update_event().to_dict(), "extra": 1})


def test_the_update_filter_refuses_before_the_cap_is_passed():
    ledger, _ = Ledger.create("c", math.inf)
    ledger.append(_update_event())
    budget = replay(ledger)
    rho = _update_event().charged()
    cap = reported_epsilon(2 * rho, 1e-6) * (1 + 1e-9)
    budget.check_update(rho, 1e-6, cap)
    with pytest.raises(BudgetExceeded):
        budget.check_update(rho * 1.01, 1e-6, cap)


# -- wire and round ------------------------------------------------------------------------------------

def test_public_settings_carry_ddp_on_the_wire():
    settings = RoundSettings(universe=500, max_set_size=30, ddp=DDPSettings(0.5, 1.25, 1 << 10))
    server, _, _ = _round(settings=settings)
    start = server.start()[0].message
    decoded = decode_submodel_message(start.to_bytes())
    assert isinstance(decoded, RoundStart) and decoded.settings.ddp == settings.ddp
    raw = bytearray(start.to_bytes())
    plain = RoundSettings(universe=500, max_set_size=30).public()
    assert plain.ddp is None and isinstance(plain, PublicSettings)
    # the flag byte must be 0 or 1; flipping the multiplier to a NaN is refused
    nan = bytearray(raw)
    offset = raw.find(np.float64(1.25).byteswap().tobytes())
    nan[offset : offset + 8] = b"\x7f\xf8" + bytes(6)
    with pytest.raises(DecodeError):
        decode_submodel_message(bytes(nan))


def _round(clients=6, settings=None, policies=None):
    workload = synthetic_workload(clients=clients, universe=500, items_per_user=30, seed=2)
    states = {c.client_id: DeviceState.new(ReferenceTrainer(c), RRParameters.preset(2)) for c in workload.clients}
    for party, ddp in (policies or {}).items():
        states[party].policy = states[party].policy.replace(ddp=ddp)
    model = ReferenceModel(*init_model(np.arange(500, dtype=np.uint64), 4, seed=1))
    settings = settings or RoundSettings(universe=500, max_set_size=30, dropout_fraction=0.2, max_samples=4,
                                         ddp=DDPSettings(1.0, 0.5, 1 << 12))
    server = SubmodelRoundServer(model, settings, sorted(states), 0)
    parties = {p: SubmodelRoundClient(s, p, random_bytes=DeterministicRandomness(f"ddp-{p}")) for p, s in states.items()}
    return server, parties, states


def test_a_ddp_round_completes_and_every_client_records_its_update_release():
    server, parties, states = _round()
    drive_round(server, parties)
    assert server.stage is RoundServerStage.COMPLETED
    for state in states.values():
        events = [e for e in state.ledger.events if isinstance(e, UpdateEvent)]
        assert len(events) == 1 and events[0].kind == "update-release"
        assert events[0].rho == pytest.approx(events[0].charged(), rel=1e-12) and events[0].rho > 0
        assert replay(state.ledger).update_epsilon() > 0


def test_a_client_that_requires_ddp_refuses_a_round_without_it():
    plain = RoundSettings(universe=500, max_set_size=30, dropout_fraction=0.2)
    server, parties, _ = _round(settings=plain, policies={1: DDPPolicy(required=True)})
    drive_round(server, parties)
    assert parties[1].stage is RoundClientStage.ABORTED
    assert "requires distributed DP" in str(parties[1].error)


def test_a_client_adds_its_own_minimum_noise_and_its_filter_can_refuse():
    server, parties, states = _round(policies={2: DDPPolicy(minimum_noise_multiplier=3.0), 3: DDPPolicy(epsilon_cap=0.01)})
    drive_round(server, parties)
    assert server.stage is RoundServerStage.COMPLETED
    louder = [e for e in states[2].ledger.events if isinstance(e, UpdateEvent)][0]
    other = [e for e in states[4].ledger.events if isinstance(e, UpdateEvent)][0]
    assert louder.row_variance >= 35 * other.row_variance  # (3 / 0.5)^2 = 36, each rounded up
    assert louder.rho < other.rho
    assert parties[3].stage is RoundClientStage.SAT_OUT and parties[3].sat_out_reason == "update-budget"
    refusal = [e for e in states[3].ledger.events if isinstance(e, UpdateEvent)]
    assert [e.kind for e in refusal] == ["update-refusal"]
    assert 3 not in server.result.contributors


def test_with_negligible_noise_the_ddp_round_matches_the_plain_round():
    tiny = RoundSettings(universe=500, max_set_size=30, dropout_fraction=0.2, max_samples=4,
                         ddp=DDPSettings(10.0, 1e-6, 1 << 24))
    plain = RoundSettings(universe=500, max_set_size=30, dropout_fraction=0.2, max_samples=4)
    results = []
    for settings in (tiny, plain):
        server, parties, _ = _round(settings=settings)
        drive_round(server, parties)
        results.append(np.asarray(server.model.rows(np.arange(500, dtype=np.uint64))))
    assert np.allclose(results[0], results[1], atol=1e-3)


@pytest.mark.parametrize("variance", [1, 7, 4096, 503_467_723])
def test_the_guide_lookup_equals_a_full_binary_search(variance):
    hi, _, limit = gaussian_table(variance)
    words = np.frombuffer(DeterministicRandomness(f"guide/{variance}")(8 * 200_000), dtype="<u8").astype(np.uint64)
    words[:hi.size] = hi[: min(hi.size, 200_000)] + np.uint64(1)  # just above entries, where buckets split
    raw = words.astype("<u8").tobytes()
    samples = discrete_gaussian_table(variance, words.size, _stream(raw + DeterministicRandomness("second")(8 * words.size)))
    ties = np.isin(words, hi)
    expected = np.searchsorted(hi, words, side="left").astype(np.int64) - limit
    assert np.array_equal(samples[~ties], expected[~ties])


def test_command_line_ddp_options(tmp_path, capsys):
    from fedprivacy.cli import main

    assert main(["privacy", "--cpp", "2", "--ddp-noise-multiplier", "2", "--reports", "4", "--delta", "1e-5", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["update_epsilon"] == reported_epsilon(4 / 8, 1e-5) and shown["update_rounds"] == 4
    out = tmp_path / "run"
    assert main(["simulate", "--clients", "6", "--items", "10", "--universe", "300", "--rounds", "1", "--quiet",
                 "--ddp-epsilon", "3", "--delta", "1e-5", "--out", str(out), "--no-plots", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ddp"]["epsilon_per_round"] == 3 and report["rounds"][-1]["update_epsilon_max"] <= 3.0
    assert main(["audit", str(out), "--json"]) == 0
    audited = json.loads(capsys.readouterr().out)
    assert all(c["update_releases"] == 1 and 0 < c["update_epsilon"] <= 3.0 for c in audited["per_client"])
    assert main(["bench", "ddp", "--count", "20000", "--opendp-count", "2000", "--repeats", "1", "--json"]) == 0
    bench = json.loads(capsys.readouterr().out)
    assert bench["samples_per_second"] > 0 and bench["count"] == 20000
