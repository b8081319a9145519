"""Attacks on malicious-mode secure aggregation (``protocols/secagg/spec.md`` §14), each shown to
work against a deliberately weakened client first (no identities, no consistency check, a curious
threshold), then to fail against the production client in malicious mode. The attacking server is
``proofs/secagg/attacks.py`` (shared with claim secagg/7): it relays honestly up to the masked inputs,
then equivocates through the consistency check and the unmasking requests, forwarding every
signature it holds; or it substitutes the victim's peers' keys.
"""

from __future__ import annotations

import dataclasses

import pytest

from fedprivacy.errors import PolicyViolation, RemoteProtocolError
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.policy import weakened_policy
from fedprivacy.secagg import Adversary, SecAggClient, SecAggConfig, SecAggServer, check_graph_parameters, find_graph_parameters, make_identities
from fedprivacy.secagg.graph import all_neighbourhoods
from fedprivacy.secagg.identity import consistency_statement
from fedprivacy.secagg.messages import ConsistencyRequest
from proofs.secagg.attacks import run_equivocation, run_key_substitution

from ..helpers import random_inputs

N = 10


def _attack_config(threshold, malicious, neighbours=N - 1):
    return SecAggConfig(tuple(range(1, N + 1)), 4, 1, neighbours, threshold, b"attack: equivocation at unmasking", malicious=malicious)


def test_equivocation_succeeds_against_a_weakened_client():
    """Curious threshold (n = 10: t = 4 on the full graph here), no consistency check: the server gets
    t seed and t key shares of the victim and its exact input."""
    outcome = run_equivocation(_attack_config(4, malicious=False), victim=10, told_alive={1, 2, 3, 4}, policy=weakened_policy())
    assert outcome.succeeded and outcome.seed_shares >= 4 and outcome.key_shares >= 4


@pytest.mark.parametrize("full_graph", [True, False])
def test_equivocation_learns_nothing_against_malicious_mode(full_graph):
    """The library's own malicious parameters for n = 10 (full graph: t = 9; searched: H(10, 4), t = 3);
    every way of splitting the victim's honest holders between the two stories."""
    graph = (
        check_graph_parameters(N, N - 1, None, 0.05, 0.1, Adversary.MALICIOUS)
        if full_graph
        else find_graph_parameters(N, 0.05, 0.1, Adversary.MALICIOUS)
    )
    cfg = _attack_config(graph.threshold, malicious=True, neighbours=graph.neighbours)
    holders = sorted(all_neighbourhoods(cfg)[10])
    for told in range(len(holders) + 1):
        outcome = run_equivocation(cfg, victim=10, told_alive=set(holders[:told]))
        assert not outcome.succeeded and outcome.recovered is None
        assert min(outcome.seed_shares, outcome.key_shares) < cfg.threshold
    # A half-and-half split against the weakened client (no consistency check, a curious threshold:
    # the search's t = 2 on H(10, 4), or t = 4 on the full graph) succeeds.
    weak_t = 4 if full_graph else find_graph_parameters(N, 0.05, 0.1, Adversary.CURIOUS).threshold
    weak = _attack_config(weak_t, malicious=False, neighbours=graph.neighbours)
    weak_holders = sorted(all_neighbourhoods(weak)[10])
    assert run_equivocation(weak, victim=10, told_alive=set(weak_holders[: len(weak_holders) // 2]), policy=weakened_policy()).succeeded


def test_equivocation_with_a_corrupt_holder_stays_below_the_bound():
    """c = 1 corrupt holder signs both stories; t = 6 > (10 + 1) / 2 still holds."""
    cfg = _attack_config(6, malicious=True)
    for split in ({1, 2, 3, 4}, {1, 2, 3, 4, 5}):
        outcome = run_equivocation(cfg, victim=10, told_alive=split, corrupt=frozenset({9}))
        assert not outcome.succeeded


def test_key_substitution_succeeds_without_identities_and_fails_with_them():
    graph = find_graph_parameters(N, 0.05, 0.1, Adversary.SEMI_MALICIOUS)
    semi = _attack_config(graph.threshold, malicious=False, neighbours=graph.neighbours)
    weakened = run_key_substitution(semi, victim=3)  # the default (semi-malicious) policy accepts this config
    assert weakened.succeeded  # a semi-malicious threshold does not help: the server holds every share
    production = run_key_substitution(dataclasses.replace(semi, malicious=True), victim=3)
    assert not production.succeeded and production.seed_shares == production.key_shares == 0
    assert "signature does not verify" in production.refusals[3]


def test_replayed_consistency_signatures_from_another_round_are_refused():
    """Genuine signatures over the same survivor set, from round 1 of the same session, replayed in
    round 0: they do not verify (the statement binds the config digest and the round)."""
    cfg = SecAggConfig(tuple(range(1, 8)), 4, 1, 6, 5, b"attack: replayed signatures!!!!!", malicious=True)
    identities, trust = make_identities(cfg.party_ids, DeterministicRandomness("replay/identities"))
    server = SecAggServer(cfg, trust=trust)
    clients = {p: SecAggClient(cfg, p, random_bytes=DeterministicRandomness(f"replay/{p}"), identity=identities[p], trust=trust)
               for p in cfg.party_ids}
    inputs = random_inputs(cfg)
    for client in clients.values():
        server.receive(client.start()[0])
    for out in server.close_stage():
        server.receive(clients[out.recipient].receive(out.message)[0])
    for out in server.close_stage():
        clients[out.recipient].receive(out.message)
        server.receive(clients[out.recipient].submit_input(inputs[out.recipient])[0])
    for out in server.close_stage():
        assert isinstance(out.message, ConsistencyRequest)
        server.receive(clients[out.recipient].receive(out.message)[0])
    requests = {out.recipient: out.message for out in server.close_stage()}
    other = dataclasses.replace(cfg, round_index=1)
    survivors = tuple(cfg.party_ids)
    replayed = tuple((p, identities[p].sign(consistency_statement(other, survivors))) for p in survivors)
    with pytest.raises(RemoteProtocolError, match="consistency signature"):
        clients[1].receive(dataclasses.replace(requests[1], signatures=replayed))
    assert clients[2].receive(requests[2])  # the genuine request is answered


def test_split_against_a_quorum_that_ignores_a_corrupt_party():
    """Full graph of 7 with one corrupt holder (party 6, which signs both stories). The server's config
    asks for a consistency quorum of 4 -- a majority of 7 parties, but 2 x 4 <= n + c -- and t = 4:
    against clients whose policy is off, a split gives each story 4 signatures and the victim's input.
    The real client (default policy, gamma = 0.05: c = 1, quorum >= 5) refuses that config before
    releasing anything; with the library's parameters (quorum 5) every split fails."""
    n, victim, corrupt = 7, 7, frozenset({6})
    session = b"attack: split under a lax quorum"
    lax = SecAggConfig(tuple(range(1, n + 1)), 4, 1, n - 1, 4, session, malicious=True, quorum=4)
    honest = [p for p in range(1, n) if p not in corrupt]
    outcomes = [run_equivocation(lax, victim, set(honest[:told]), corrupt, policy=weakened_policy())
                for told in range(len(honest) + 1)]
    assert any(o.succeeded for o in outcomes)
    identities, trust = make_identities(lax.party_ids, DeterministicRandomness("lax-quorum/identities"))
    with pytest.raises(PolicyViolation, match="quorum 4"):
        SecAggClient(dataclasses.replace(lax, threshold=6), 1, identity=identities[1], trust=trust)
    real = SecAggConfig.create(range(1, n + 1), 4, full_graph=True, adversary=Adversary.MALICIOUS, session_id=session)
    assert real.quorum == 5
    for told in range(len(honest) + 1):
        outcome = run_equivocation(real, victim, set(honest[:told]), corrupt)
        assert not outcome.succeeded and min(outcome.seed_shares, outcome.key_shares) < real.threshold


def test_key_substitution_in_a_jointly_covered_sum():
    """A submodel round's PSU sum is advertised jointly with its rows' sum (spec §14.8): its own key
    broadcast is unsigned, and the PSU client compares it with the keys the rows' sum authenticated.
    A server that substitutes keys there recovers the victim's input from a client that skips the
    comparison, and is refused by the real one (no share leaves it)."""
    parties = tuple(range(1, N + 1))
    covered = SecAggConfig(parties, 4, 3, 4, 3, b"attack: joint advertisement (PSU)", malicious=True)
    verifying = SecAggConfig(parties, 4, 1, N - 1, 9, b"attack: joint advertisement (rows)", malicious=True)
    weakened = run_key_substitution(covered, victim=3, policy=weakened_policy(), covered_by=verifying,
                                    weaken_partner_check=True)
    assert weakened.succeeded
    real = run_key_substitution(covered, victim=3, policy=weakened_policy(), covered_by=verifying)
    assert not real.succeeded and real.seed_shares == real.key_shares == 0
    assert "not the ones its joint advertisement signed" in real.refusals[3]
