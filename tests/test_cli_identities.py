"""``fedprivacy identities``: identity files and a trust store that a malicious-mode round accepts."""

from __future__ import annotations

import json
import stat

import numpy as np
import pytest

from fedprivacy.adapters.identity import identity_from_config, load_identity, load_trust_store
from fedprivacy.cli import main
from fedprivacy.secagg import SecAggConfig, run_secagg_round
from fedprivacy.secagg.params import Adversary


def test_identities_are_written_once_and_a_malicious_round_runs_on_them(tmp_path, capsys):
    out = tmp_path / "ids"
    assert main(["identities", "--parties", "3-6,9", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parties"] == 5 and report["first_party"] == 3 and report["last_party"] == 9
    trust = load_trust_store(out / "trust-store.json")
    assert sorted(trust) == [3, 4, 5, 6, 9]
    identities = {}
    for party in trust:
        path = out / f"identity-{party}.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # a secret: the owner only
        identity, store = identity_from_config({"fedprivacy-identity-key": str(path),
                                                "fedprivacy-trust-store": str(out / "trust-store.json")})
        assert identity.party_id == party and store[party] == identity.verify_key
        identities[party] = load_identity(path)
    config = SecAggConfig.create(sorted(trust), 8, adversary=Adversary.MALICIOUS, dropout_fraction=0.2)
    inputs = {p: np.full(8, p, dtype=np.uint32) for p in trust}
    report = run_secagg_round(config, inputs, identities=identities, trust=trust)
    assert report.aborted is None and report.result.tolist() == [sum(trust)] * 8
    # Never overwritten: a second run into the same directory is refused, the keys unchanged.
    before = (out / "identity-3.json").read_bytes()
    assert main(["identities", "--parties", "3", "--out", str(out)]) == 2
    assert "never overwritten" in capsys.readouterr().err
    assert (out / "identity-3.json").read_bytes() == before


@pytest.mark.parametrize("parties", ["0-3", "5-2", "1,1", "a-b", "1-4294967296", ""])
def test_bad_party_ranges_are_refused(tmp_path, capsys, parties):
    with pytest.raises(SystemExit) as exit_info:
        main(["identities", "--parties", parties, "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2
    assert "--parties must be party ids" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
