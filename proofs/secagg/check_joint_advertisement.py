"""Check for claim secagg/9 (see claim-9-joint-advertisement.md), with production clients."""

from __future__ import annotations

import dataclasses

import pytest

from fedprivacy.errors import RemoteProtocolError
from fedprivacy.hazmat.prg import DeterministicRandomness
from fedprivacy.policy import weakened_policy
from fedprivacy.secagg import SecAggClient, SecAggConfig, SecAggServer, make_identities
from fedprivacy.secagg.client import start_jointly
from fedprivacy.secagg.identity import (
    advertisement_statement,
    joint_advertisement_statement,
)
from fedprivacy.secagg.messages import KeyBroadcast, decode_message

from .attacks import run_key_substitution

N = 8
PARTIES = tuple(range(1, N + 1))
COVERED = SecAggConfig(PARTIES, 3, 3, 4, 3, b"proof: joint advertisement (PSU)", malicious=True)
VERIFYING = SecAggConfig(PARTIES, 3, 1, N - 1, 6, b"proof: joint advertisement, rows", malicious=True)
FIELDS = ("channel_public_key", "mask_public_key", "partner_channel_public_key", "partner_mask_public_key", "signature")


def _setup(name):
    identities, trust = make_identities(PARTIES, DeterministicRandomness(f"{name}/identities"))

    def client(cfg, p, tag):
        return SecAggClient(cfg, p, random_bytes=DeterministicRandomness(f"{name}/{tag}/{p}"), identity=identities[p],
                            trust=trust, policy=weakened_policy())

    covered = {p: client(COVERED, p, "covered") for p in PARTIES}
    verifying = {p: client(VERIFYING, p, "verifying") for p in PARTIES}
    servers = (SecAggServer(COVERED, trust=trust, joint="covered"), SecAggServer(VERIFYING, trust=trust, joint="verifying"))
    for p in PARTIES:
        (first,), (second,) = start_jointly(covered[p], verifying[p])
        servers[0].receive(first)
        servers[1].receive(second)
    ads = servers[0].advertisements
    servers[1].set_partner_keys({p: ads[p][:2] for p in ads})
    joint = {o.recipient: o.message for o in servers[1].close_stage()}
    plain = {o.recipient: o.message for o in servers[0].close_stage()}
    return covered, verifying, joint, plain, identities, trust


def _flip(value: bytes) -> bytes:
    return value[:-1] + bytes([value[-1] ^ 1])


def test_every_field_of_every_entry_is_bound():
    """Flip one bit of one field of one entry -- in the jointly signed broadcast (five fields) or in
    the covered sum's unsigned one (its two keys) -- for every entry of party 1's broadcasts: the
    client refuses each, and the untouched pair is accepted."""
    victim = 1
    _, _, joint, plain, _, _ = _setup("claim9/fields")
    for index in range(len(joint[victim].peers)):
        for name in FIELDS:
            covered, verifying, *_ = _setup("claim9/fields")
            peers = list(joint[victim].peers)
            peers[index] = dataclasses.replace(peers[index], **{name: _flip(getattr(peers[index], name))})
            with pytest.raises(RemoteProtocolError):
                verifying[victim].receive(decode_message(KeyBroadcast(victim, tuple(peers), True, True).to_bytes()))
    for index in range(len(plain[victim].peers)):
        for name in FIELDS[:2]:
            covered, verifying, *_ = _setup("claim9/fields")
            verifying[victim].receive(joint[victim])
            covered[victim].accept_partner_keys(verifying[victim].partner_keys)
            peers = list(plain[victim].peers)
            peers[index] = dataclasses.replace(peers[index], **{name: _flip(getattr(peers[index], name))})
            with pytest.raises(RemoteProtocolError, match="not the ones its joint advertisement signed"):
                covered[victim].receive(decode_message(KeyBroadcast(victim, tuple(peers)).to_bytes()))
    covered, verifying, *_ = _setup("claim9/fields")
    verifying[victim].receive(joint[victim])
    covered[victim].accept_partner_keys(verifying[victim].partner_keys)
    assert covered[victim].receive(plain[victim])


def test_a_joint_signature_verifies_for_its_pairing_only():
    """Domain separation: the joint signature is no single advertisement of either sum, and no joint
    advertisement of the sums in the other order or of another round."""
    _, _, joint, _, _, trust = _setup("claim9/domains")
    entry = joint[1].peers[0]
    covered_keys = (entry.partner_channel_public_key, entry.partner_mask_public_key)
    verifying_keys = (entry.channel_public_key, entry.mask_public_key)
    party, signature = entry.party_id, entry.signature
    assert trust.verify(party, signature, joint_advertisement_statement(COVERED, VERIFYING, party, covered_keys, verifying_keys))
    other_round = dataclasses.replace(VERIFYING, round_index=1)
    for statement in (
        advertisement_statement(COVERED, party, *covered_keys),
        advertisement_statement(VERIFYING, party, *verifying_keys),
        joint_advertisement_statement(VERIFYING, COVERED, party, verifying_keys, covered_keys),
        joint_advertisement_statement(COVERED, other_round, party, covered_keys, verifying_keys),
    ):
        assert not trust.verify(party, signature, statement)


@pytest.mark.parametrize("victim", [1, 4, 8])
def test_key_substitution_in_the_covered_sum(victim):
    """The server's best move against the unsigned covered broadcast (its own keys for every peer of
    the victim): it recovers the victim's input from a client that skips the comparison with the
    authenticated keys, and gets nothing from the production client."""
    weakened = run_key_substitution(COVERED, victim, f"claim9/{victim}", weakened_policy(), VERIFYING, weaken_partner_check=True)
    assert weakened.succeeded
    production = run_key_substitution(COVERED, victim, f"claim9/{victim}", weakened_policy(), VERIFYING)
    assert not production.succeeded and production.seed_shares == production.key_shares == 0
