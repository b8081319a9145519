"""Check for claim secagg/1 (see claim-1-correctness.md)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedprivacy.hazmat.field import Modulus
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.secagg import DropoutSchedule, SecAggStep, SecAggConfig, run_secagg_round
from fedprivacy.secagg.graph import all_neighbourhoods
from fedprivacy.policy import weakened_policy

from .common import inputs_for, plain_sum, recoverable

OPTIONS = [None, *SecAggStep]


@pytest.mark.parametrize("modulus", list(Modulus))
def test_every_dropout_pattern_of_five_parties(modulus):
    config = SecAggConfig((1, 2, 3, 4, 5), 3, modulus, 4, 3, b"proof: secagg correctness 000001")
    graph = all_neighbourhoods(config)
    inputs = inputs_for(config)
    completed = aborted = 0
    for pattern in itertools.product(OPTIONS, repeat=5):
        drops = {party: stage for party, stage in zip(config.party_ids, pattern) if stage is not None}
        report = run_secagg_round(
            config, inputs, DropoutSchedule(drops), random_source=lambda p: DeterministicRandomness(f"{pattern}{p}"), policy=weakened_policy()
        )
        if recoverable(config, graph, drops):
            survivors = {p for p in config.party_ids if drops.get(p) in (None, SecAggStep.UNMASK)}
            assert report.input_ids == survivors
            assert [int(v) for v in report.result] == plain_sum(inputs, survivors, modulus), pattern
            completed += 1
        else:
            assert report.result is None and report.aborted is not None, pattern
            aborted += 1
    assert completed + aborted == 5**5 and completed > 0 and aborted > 0


@st.composite
def harary_rounds(draw):
    n = draw(st.integers(5, 14))
    k = draw(st.sampled_from([k for k in range(2, n - 1, 2)]))
    t = draw(st.integers(2, k + 1))
    modulus = draw(st.sampled_from(list(Modulus)))
    drops = draw(st.dictionaries(st.integers(1, n), st.sampled_from(list(SecAggStep)), max_size=n // 2))
    return SecAggConfig(tuple(range(1, n + 1)), 4, modulus, k, t, b"proof: secagg correctness harary"), drops


@settings(max_examples=80)
@given(harary_rounds())
def test_harary_graphs_under_random_dropouts(case):
    config, drops = case
    inputs = inputs_for(config)
    report = run_secagg_round(config, inputs, DropoutSchedule(drops), policy=weakened_policy())
    if recoverable(config, all_neighbourhoods(config), drops):
        survivors = {p for p in config.party_ids if drops.get(p) in (None, SecAggStep.UNMASK)}
        assert [int(v) for v in report.result] == plain_sum(inputs, survivors, config.modulus)
    else:
        assert report.result is None and report.aborted is not None


def _pickled_map(function, chunks):
    """A process pool's map without the processes: each chunk and result goes through pickle."""
    import pickle

    for chunk in chunks:
        yield pickle.loads(pickle.dumps(function(pickle.loads(pickle.dumps(chunk)))))


@settings(max_examples=40)
@given(harary_rounds(), st.integers(1, 4), st.integers(1, 3))
def test_the_unmasking_split_over_workers_gives_the_same_output(case, workers, per_worker):
    """The removal of the masks as independent chunks (``fedprivacy/secagg/unmasking.py``): the same
    output, or the same clean abort, whatever the split."""
    from fedprivacy.secagg import UnmaskingWorkers

    config, drops = case
    inputs = inputs_for(config)
    report = run_secagg_round(config, inputs, DropoutSchedule(drops), policy=weakened_policy(),
                              server_workers=UnmaskingWorkers(_pickled_map, workers, per_worker))
    if recoverable(config, all_neighbourhoods(config), drops):
        survivors = {p for p in config.party_ids if drops.get(p) in (None, SecAggStep.UNMASK)}
        assert [int(v) for v in report.result] == plain_sum(inputs, survivors, config.modulus)
    else:
        assert report.result is None and report.aborted is not None
