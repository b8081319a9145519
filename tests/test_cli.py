"""The command line: machine output on stdout with --json, progress on stderr."""

from __future__ import annotations

import json
import math

from fedprivacy.cli import main


def test_simulate_secagg_json(capsys):
    assert main(["simulate", "--mode", "secagg", "--clients", "10", "--dim", "50", "--json"]) == 0
    out, _ = capsys.readouterr()
    result = json.loads(out)
    assert result["mode"] == "secure-aggregation"
    assert result["max_abs_error_vs_plaintext_mean"] < 10 * result["quantization_step"]


def test_simulate_submodel_json(capsys):
    args = ["simulate", "--clients", "12", "--items", "60", "--universe", "2000", "--dim", "4", "--rounds", "2", "--json"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["mode"] == "secure-submodel" and len(report["rounds"]) == 3
    assert report["rounds"][2]["epsilon_spent_max"] <= report["epsilon_inf"]
    assert "round 2/2" in err


def test_bench_secagg_json_has_the_promised_fields(capsys):
    args = ["bench", "secagg", "--clients", "12", "--dim", "100", "--dropout", "0.2", "--drop-stage", "input", "--json"]
    assert main(args) == 0
    out, _ = capsys.readouterr()
    result = json.loads(out)
    for field in ("correct", "clients", "dim", "dropout", "neighbours", "threshold", "client_seconds_median",
                  "client_masking_seconds_median", "server_seconds", "total_seconds", "upload_bytes_per_client",
                  "limit_seconds", "peak_rss_mb"):
        assert field in result
    assert result["correct"] is True


def test_invalid_parameters_give_a_clear_error(capsys):
    assert main(["bench", "secagg", "--clients", "100", "--dim", "10", "--neighbours", "21"]) == 2
    assert "neighbours must be even" in capsys.readouterr().err


def test_bench_round_checks_against_plaintext(capsys):
    args = ["bench", "round", "--clients", "12", "--items", "60", "--universe", "2000", "--dim", "4", "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["correct"] is True and result["max_abs_difference_vs_plaintext"] < 1e-6
    for field in ("clients", "union_size", "psu_seconds", "ldp_seconds", "aggregation_seconds", "server_seconds",
                  "client_seconds_median", "upload_bytes_per_client", "download_bytes_per_client", "total_seconds"):
        assert field in result


def test_bench_round_sizes_the_first_psu_table_from_a_preceding_round_and_says_so(capsys):
    args = ["bench", "round", "--clients", "12", "--items", "60", "--universe", "2000", "--dim", "4", "--json"]
    assert main(args) == 0
    ceiling = json.loads(capsys.readouterr().out)
    assert ceiling["psu_first_bound"] == ceiling["psu_ceiling"] == 720 and ceiling["psu_first_bound_source"] == "ceiling"
    for extra, source in ((["--psu-first-bound", "previous"], "computed in plaintext"),
                          (["--psu-first-bound", "previous", "--warm-up"], "warm-up round")):
        assert main(args + extra) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["correct"] is True and source in result["psu_first_bound_source"]
        assert result["psu_first_bound"] == math.ceil(1.25 * result["union_estimate"]) < 720
        assert result["psu_bounds"][0] == result["psu_first_bound"] and result["psu_attempts"] == len(result["psu_bounds"])
        assert result["psu_table_words"] < ceiling["psu_table_words"]
        assert (result["warm_up"] is not None) == ("--warm-up" in extra)
        if result["warm_up"] is not None:
            assert result["union_estimate"] == result["warm_up"]["union_size"]
            assert result["warm_up"]["psu_first_bound"] == 720


def test_bench_round_malicious_times_both_modes_and_the_signature_floor(capsys):
    args = ["bench", "round", "--clients", "12", "--items", "60", "--universe", "2000", "--dim", "4",
            "--adversary", "malicious", "--repeats", "1", "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["correct"] is True and result["adversary"] == "malicious"
    assert result["baseline_adversary"] == "semi-malicious" and result["clock"] == "process CPU time"
    # Both secure sums (PSU, rows) signed: one joint advertisement signature for both sums' keys and
    # one consistency signature per sum by each client that took part (protocols/secagg/spec.md §14.8).
    assert result["signatures_made_per_client_median"] == 3
    assert result["signatures_checked_per_client_median"] > 0 and result["server_signatures_checked"] > 0
    for field in ("protocol_ratio", "protocol_extra_over_floor", "baseline_protocol_seconds", "protocol_extra_floor_seconds",
                  "server_ratio", "client_ratio", "sign_seconds", "verify_seconds"):
        assert result[field] is not None and result[field] > 0


def test_simulate_out_dir_keeps_ledgers_that_audit_clean(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["simulate", "--clients", "10", "--items", "50", "--universe", "1500", "--dim", "4", "--rounds", "2",
            "--out", str(out), "--json"]
    assert main(args) == 0
    capsys.readouterr()
    assert (out / "report.json").exists()
    assert len(list((out / "clients").glob("*/ledger.jsonl"))) == 10
    assert main(["audit", str(out), "--json"]) == 0
    audit = json.loads(capsys.readouterr().out)
    assert audit["clients"] == 10 and audit["broken_ledgers"] == []
    # A second run over the same folder continues the same ledgers and memos.
    assert main(args) == 0
    capsys.readouterr()
    assert main(["audit", str(out), "--json"]) == 0
    assert max(c["releases"] for c in json.loads(capsys.readouterr().out)["per_client"]) == 4


def test_simulate_movielens_needs_its_data(tmp_path, capsys):
    assert main(["simulate", "--dataset", "movielens-100k", "--data-path", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err


def test_simulate_compare_reports_three_methods(capsys):
    args = ["simulate", "--clients", "10", "--items", "50", "--universe", "1500", "--dim", "4", "--rounds", "1",
            "--compare", "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    methods = {m["method"]: m for m in report["comparison"]}
    assert set(methods) == {"secure submodel FL (this library)", "plaintext submodel FL",
                            "full-model FedAvg + secure aggregation"}
    full = methods["full-model FedAvg + secure aggregation"]
    assert full["upload_bytes_per_client"] > methods["secure submodel FL (this library)"]["upload_bytes_per_client"]
    assert all(0 <= m["test_auc"] <= 1 for m in methods.values())
    # The baselines' curves, round by round, for auc.png.
    assert all("plaintext_test_auc" in row and "fedavg_test_auc" in row for row in report["rounds"])
    assert report["rounds"][-1]["fedavg_test_auc"] == full["test_auc"]


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = ["simulate", "--clients", "10", "--items", "50", "--universe", "1500", "--dim", "4", "--rounds", "2"]


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_simulate_out_writes_plots_and_progress_stays_on_stderr(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY, "--out", str(out), "--json"]) == 0
    stdout, err = capsys.readouterr()
    report = json.loads(stdout)  # stdout is exactly the report
    assert stdout.count("\n") == 1 and "training, upload" not in stdout
    for name in ("auc.png", "epsilon.png"):
        width, height = _png_size(out / name)
        assert width > 100 and height > 100
    assert json.loads((out / "report.json").read_text()) == report
    # Progress on stderr, one plain line per update (not a terminal): no carriage returns.
    assert "round 1/2: training, upload" in err and "10/10 clients" in err and "round 2/2: auc" in err
    assert "\r" not in err and "auc.png, epsilon.png written under" in err
    for row in report["rounds"]:
        assert 0 < row["test_loss"] < 5
    for row in report["rounds"][1:]:
        assert row["epsilon_spent_min"] <= row["epsilon_spent_median"] <= row["epsilon_spent_max"] <= report["epsilon_inf"]


def test_simulate_table_has_every_column_and_quiet_silences_progress(capsys):
    assert main([*TINY, "--quiet"]) == 0
    stdout, err = capsys.readouterr()
    assert err == ""
    header = stdout.splitlines()[0]
    for column in ("round", "test AUC", "test loss", "union", "mean |S''|", "up B/client", "down B/client",
                   "protocol s", "eps spent"):
        assert column in header
    assert len(stdout.splitlines()) == 4  # the header, rounds 0..2


def test_simulate_without_matplotlib_still_writes_the_report(tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    out = tmp_path / "run"
    assert main([*TINY, "--out", str(out), "--json", "--quiet"]) == 0
    stdout, err = capsys.readouterr()
    assert json.loads(stdout)["mode"] == "secure-submodel"
    assert err.strip().splitlines() == [
        "fedprivacy: no auc.png or epsilon.png: plots need matplotlib: pip install 'fedprivacy[plot]'"
    ]
    assert (out / "report.json").exists() and len(list((out / "clients").glob("*/ledger.jsonl"))) == 10
    assert not (out / "auc.png").exists() and not (out / "epsilon.png").exists()


def test_simulate_no_plots(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY, "--rounds", "1", "--out", str(out), "--no-plots", "--json"]) == 0
    _, err = capsys.readouterr()
    assert (out / "report.json").exists() and not (out / "auc.png").exists()
    assert "matplotlib" not in err
