"""What ``fedprivacy.submodel`` exports: the protocol, not the demo model."""

from __future__ import annotations

import fedprivacy.submodel as submodel
import fedprivacy.submodel.demo as demo
from fedprivacy.submodel import client, engine, interfaces, server, settings

PROTOCOL = {
    "SubmodelRoundClient": client, "SubmodelRoundServer": server, "RoundSettings": settings,
    "DeviceState": client, "run_round": engine, "RoundDrops": engine, "SubmodelRoundOutcome": engine,
    "GlobalModel": interfaces, "LocalTrainer": interfaces, "TrainingResult": interfaces,
}


def test_the_package_exports_the_protocol_objects_themselves():
    for name, home in PROTOCOL.items():
        assert name in submodel.__all__ and getattr(submodel, name) is getattr(home, name), name


def test_every_exported_name_exists():
    assert [n for n in submodel.__all__ if not hasattr(submodel, n)] == []
    assert [n for n in demo.__all__ if not hasattr(demo, n)] == []


def test_the_demo_model_is_not_a_top_level_export():
    assert set(demo.__all__).isdisjoint(submodel.__all__)
    assert "synthetic_workload" not in submodel.__all__ and "init_model" not in submodel.__all__
