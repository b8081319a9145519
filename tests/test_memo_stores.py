"""Both stores (files, Flower's node state) load a client's memo through one rule: a memo that is
missing while the ledger records releases is refused, never replaced by fresh answers."""

from __future__ import annotations

import pytest

from fedprivacy.accounting.events import PrivacyEvent
from fedprivacy.accounting.ledger import Ledger
from fedprivacy.adapters.storage import ClientStore
from fedprivacy.errors import DecodeError, InvalidParameters
from fedprivacy.ldp.memo import PermanentMemo
from fedprivacy.ldp.params import RRParameters

PARAMS = RRParameters.preset(2)


def _ledger_with_a_release(client_id: str) -> Ledger:
    ledger, _ = Ledger.create(client_id, 10.0)
    ledger.append(PrivacyEvent(client_id, 0, "release", "double-randomized-response", PARAMS.as_strings(), epoch=1,
                               indices_reported=3, max_reports=1, epsilon_report=PARAMS.epsilon_1,
                               epsilon_inf=PARAMS.epsilon_inf))
    return ledger


def test_the_one_rule():
    assert not Ledger.create("ana", 10.0)[0].has_releases and _ledger_with_a_release("ana").has_releases
    empty = PermanentMemo.stored_or_empty(None, "ana", PARAMS, released=False, where="here")
    assert empty.client_id == "ana" and empty.fresh
    with pytest.raises(DecodeError, match="here is missing but the ledger records releases"):
        PermanentMemo.stored_or_empty(None, "ana", PARAMS, released=True, where="here")
    stored = PermanentMemo.stored_or_empty(empty.encode(), "ana", PARAMS, released=True, where="here")
    assert stored.encode() == empty.encode()
    with pytest.raises(InvalidParameters):
        PermanentMemo.stored_or_empty(empty.encode(), "bob", PARAMS, released=False, where="here")


def test_the_file_store_refuses_a_lost_memo_after_a_release(tmp_path):
    store = ClientStore(tmp_path, "ana")
    assert store.load_memo(PARAMS, store.open_ledger(10.0)).fresh
    with pytest.raises(DecodeError, match="memo"):
        store.load_memo(PARAMS, _ledger_with_a_release("ana"))


def test_the_flower_store_refuses_a_lost_memo_after_a_release():
    pytest.importorskip("flwr")
    from flwr.app import RecordDict

    from fedprivacy.adapters.flower._submodel_state import ContextStore

    store = ContextStore(RecordDict(), "ana")
    ledger = store.open_ledger(10.0)
    memo = store.load_memo(PARAMS, ledger)
    assert memo.fresh
    with pytest.raises(DecodeError, match="the node's memo is missing"):
        store.load_memo(PARAMS, _ledger_with_a_release("ana"))
    store.save_memo(memo)
    assert store.load_memo(PARAMS, _ledger_with_a_release("ana")).encode() == memo.encode()
