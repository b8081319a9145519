"""Hypothesis properties: random inputs, moduli, graph parameters and dropout schedules."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fedprivacy.hazmat.field import Modulus
from fedprivacy.secagg import DropoutSchedule, SecAggStep
from fedprivacy.secagg import run_secagg_round
from fedprivacy.secagg.graph import all_neighbourhoods
from proofs.secagg.common import recoverable

from .helpers import config, plain_sum, random_inputs, PROTOCOL_POLICY


@st.composite
def rounds(draw):
    n = draw(st.integers(3, 12))
    ids = sorted(draw(st.lists(st.integers(1, 10_000), min_size=n, max_size=n, unique=True)))
    even = [k for k in range(2, n - 1, 2)]
    k = draw(st.sampled_from(even + [n - 1]))
    t = draw(st.integers(2, k + 1))
    modulus = draw(st.sampled_from(list(Modulus)))
    drops = draw(st.dictionaries(st.sampled_from(ids), st.sampled_from(list(SecAggStep)), max_size=n))
    late = draw(st.sets(st.sampled_from(ids))) & set(drops)
    seed = draw(st.integers(0, 2**16))
    return config(ids, dim=draw(st.integers(1, 9)), modulus=modulus, neighbours=k, threshold=t), drops, late, seed


@settings(max_examples=60)
@given(rounds())
def test_output_is_the_sum_of_exactly_the_masked_inputs_or_a_clean_abort(case):
    cfg, drops, late, seed = case
    inputs = random_inputs(cfg, seed)
    report = run_secagg_round(cfg, inputs, DropoutSchedule(drops, frozenset(late)), policy=PROTOCOL_POLICY)
    if recoverable(cfg, all_neighbourhoods(cfg), drops):
        assert not report.client_errors
        assert report.aborted is None
        survivors = {p for p in cfg.party_ids if p not in drops or drops[p] is SecAggStep.UNMASK}
        assert report.input_ids == survivors
        assert [int(v) for v in report.result] == plain_sum(inputs, survivors, cfg.modulus)
    else:
        # Clients that see too few holders refuse early; a refusal is a dropout, so either the round
        # aborts or the others complete it without the refusers -- with their exact sum.
        assert all("holders" in str(e) for e in report.client_errors.values())
        if report.result is None:
            assert report.aborted is not None
        else:
            assert report.client_errors and report.aborted is None
            survivors = {p for p in cfg.party_ids if p not in drops or drops[p] is SecAggStep.UNMASK}
            assert report.input_ids == survivors - set(report.client_errors)
            assert [int(v) for v in report.result] == plain_sum(inputs, report.input_ids, cfg.modulus)
