"""A short seeded run of every fuzz target (fuzz/targets.py); `make fuzz` runs a million inputs each."""

from __future__ import annotations

import os

import pytest

from fuzz.run import fuzz_target, mutate
from fuzz.targets import targets

INPUTS = int(os.environ.get("FEDPRIVACY_FUZZ_INPUTS", "2000"))
TARGETS = targets()


def test_every_decoder_and_file_format_has_a_target():
    assert {t.name for t in TARGETS} == {
        "secagg-message", "secagg-config", "secagg-row-plan", "secagg-compact-row-plan", "secagg-snapshot", "psu-parameters",
        "submodel-message", "submodel-snapshot", "memo", "ledger-line", "ledger-file", "head-record", "client-state",
    }
    assert all(t.seeds for t in TARGETS)


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_mutated_inputs_raise_only_decode_error(target):
    decoded, rejected = fuzz_target(target, INPUTS, seed=20261204)
    assert decoded + rejected == INPUTS and rejected > 0  # the mutations do reach the error paths


def test_the_fuzzer_finds_a_decoder_that_leaks_another_exception():
    """The harness is not vacuous: a decoder that lets an IndexError out is caught."""
    from fuzz.targets import Target

    def fragile(data: bytes) -> int:
        return data[40]  # IndexError on short inputs

    with pytest.raises(AssertionError, match="IndexError"):
        fuzz_target(Target("fragile", (bytes(64),), fragile), 200, seed=1)


def test_mutations_are_seeded():
    import random

    first = [mutate(random.Random(5), b"abcdefgh" * 4, ()) for _ in range(3)]
    assert first == [mutate(random.Random(5), b"abcdefgh" * 4, ()) for _ in range(3)]
