"""``fedprivacy bench flower`` at a tiny size: both implementations correct, every promised key there."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fedprivacy.cli import main

KEYS = (
    "flower_server_seconds", "ours_server_seconds", "server_speedup", "flower_client_seconds_median",
    "ours_client_seconds_median", "client_speedup", "flower_correct", "ours_correct", "flower_error", "ours_error",
    "clients", "dim", "dropout", "drop_stage", "dropped", "neighbours", "num_shares", "threshold", "speedups_comparable",
)


@pytest.mark.parametrize("stage", ["unmask", "input"])
def test_bench_flower_at_tiny_size(capsys, stage):
    pytest.importorskip("flwr")
    args = ["bench", "flower", "--clients", "6", "--dim", "100", "--dropout", "0.17", "--drop-stage", stage, "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert all(key in result for key in KEYS)
    assert result["flower_correct"] is True and result["ours_correct"] is True
    assert result["dropped"] == 1 and result["ours_error"] is None and result["speedups_comparable"] is True


def test_bench_flower_module_imports_without_flwr():
    code = "import sys; sys.modules['flwr'] = None\nimport fedprivacy_bench.flower\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_bench_flower_reports_what_flower_does_when_a_node_drops_before_sharing(capsys):
    pytest.importorskip("flwr")
    args = ["bench", "flower", "--clients", "12", "--dim", "50", "--dropout", "0.1", "--neighbours", "4",
            "--drop-stage", "share", "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ours_correct"] is True and result["flower_correct"] is False
    assert "Not enough shares" in result["flower_error"] and "KeyError" in result["flower_error"]
    assert result["speedups_comparable"] is False
