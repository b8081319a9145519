"""Two malicious-server attacks on secure aggregation, run against real clients.

**Equivocation at unmasking.**
The server relays every message honestly up to the masked inputs. Then it tells part of a victim's
share holders "the victim is alive" and the rest "the victim dropped", so that the first group
releases seed shares and the second mask-key shares of the victim; with t of each it rebuilds both
secrets and strips every mask from the victim's upload. In malicious mode it must also present each
group a survivor set (with and without the victim) and forward consistency signatures over it; it
forwards every signature it has, so the clients' checks are the only thing that stops it.

Corrupt parties (colluding with the server) are modelled by forking their client state: one copy
follows each story, so a corrupt party signs both survivor sets and releases both share kinds.

**Key substitution.** The server replaces every peer key in the victim's key broadcast with keys it
made itself and plays all of the victim's neighbours: the victim encrypts its shares (both kinds) to
the server and masks with pair keys the server can compute, so its upload opens without any
unmasking request. Identity keys (malicious mode) are what stops this: the substituted keys carry no
valid signature. For a sum whose keys are covered by a joint advertisement (spec §14.8) the
broadcast is unsigned by design; the client's comparison with the keys its partner sum
authenticated is what stops it there.

Used by ``check_malicious_mode.py`` (claim secagg/7) and the attack tests.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from fedprivacy.errors import FedPrivacyError
from fedprivacy.hazmat import shamir
from fedprivacy.hazmat.field import dtype_of, modulus_value
from fedprivacy.hazmat.kex import agree, generate_keypair
from fedprivacy.hazmat.prg import DeterministicRandomness, MaskExpander
from fedprivacy.policy import ClientPolicy
from fedprivacy.secagg import SecAggClient, SecAggConfig, SecAggServer
from fedprivacy.secagg.client import start_jointly
from fedprivacy.secagg.graph import all_neighbourhoods
from fedprivacy.secagg.identity import make_identities
from fedprivacy.secagg.masking import (
    decrypt_share,
    encrypt_share,
    limbs_to_secret,
    pair_mask_key,
    self_mask_key,
    share_channel_key,
)
from fedprivacy.secagg.messages import (
    SECRET_LIMBS,
    AdvertiseKeys,
    ConsistencyRequest,
    KeyBroadcast,
    PeerKeys,
    RoutedShares,
    ShareKeys,
    ConsistencyResponse,
    MaskedInput,
    UnmaskRequest,
    UnmaskResponse,
)

__all__ = ["EquivocationOutcome", "run_equivocation", "run_key_substitution", "inputs_for"]


@dataclass
class EquivocationOutcome:
    threshold: int
    seed_shares: int  # shares of the victim's self-mask seed the server collected
    key_shares: int  # shares of the victim's mask key
    recovered: np.ndarray | None  # the victim's input, if the server could strip its masks
    victim_input: np.ndarray
    refusals: dict[int, str]  # honest party -> why it refused

    @property
    def succeeded(self) -> bool:
        return self.recovered is not None and bool(np.array_equal(self.recovered, self.victim_input))


def inputs_for(config: SecAggConfig) -> dict[int, np.ndarray]:
    high = modulus_value(config.modulus)
    return {
        p: np.array([(p * 7919 + i * 104729) % high for i in range(config.dim)], dtype=dtype_of(config.modulus))
        for p in config.party_ids
    }


def _fork(client: SecAggClient) -> SecAggClient:
    return copy.deepcopy(client, {id(client._random_bytes): client._random_bytes})  # noqa: SLF001


def run_equivocation(
    config: SecAggConfig,
    victim: int,
    told_alive: set[int],
    corrupt: frozenset[int] = frozenset(),
    name: str = "equivocation",
    bystanders: str = "alive",
    policy: ClientPolicy | None = None,
) -> EquivocationOutcome:
    """Run the attack on ``victim``. Its honest holders in ``told_alive`` hear "alive", the other honest
    holders "dropped"; corrupt holders play both. Every other party (not the victim, not one of its
    holders) hears the ``bystanders`` story: their signatures count for the holders' other peers.
    ``policy`` is every client's (default: the default policy; ``weakened_policy()`` lets the
    threshold alone, not the client's policy, decide)."""
    identities, trust = make_identities(config.party_ids, DeterministicRandomness(f"{name}/identities"))
    clients = {
        p: SecAggClient(
            config,
            p,
            random_bytes=DeterministicRandomness(f"{name}/party-{p}"),
            identity=identities[p] if config.malicious else None,
            trust=trust if config.malicious else None,
            policy=policy,
        )
        for p in config.party_ids
    }
    inputs = inputs_for(config)
    server = SecAggServer(config)  # honest relay for the first stages
    adverts: dict[int, AdvertiseKeys] = {}
    for p, client in clients.items():
        (message,) = client.start()
        adverts[p] = message
        server.receive(message)
    for out in server.close_stage():
        for message in clients[out.recipient].receive(out.message):
            server.receive(message)
    masked: dict[int, MaskedInput] = {}
    for out in server.close_stage():
        clients[out.recipient].receive(out.message)
        (message,) = clients[out.recipient].submit_input(inputs[out.recipient])
        masked[out.recipient] = message
    victim_peers = clients[victim].mask_peers  # (a client forgets them once it has answered)
    everyone = tuple(config.party_ids)
    without_victim = tuple(p for p in everyone if p != victim)
    holders = all_neighbourhoods(config)[victim] | ({victim} if config.full_graph else set())

    # Each party follows one story ("alive": the victim is in U3; "dropped": it is not); a corrupt
    # holder is forked and follows both.
    stories: list[tuple[int, str, SecAggClient]] = []
    for p, client in clients.items():
        if p in corrupt and p in holders:
            stories += [(p, "alive", client), (p, "dropped", _fork(client))]
        elif p in holders and p != victim and p not in told_alive:
            stories.append((p, "dropped", client))
        elif p == victim or p in holders:
            stories.append((p, "alive", client))
        else:
            stories.append((p, bystanders, client))
    refusals: dict[int, str] = {}
    signatures: dict[str, dict[int, bytes]] = {"alive": {}, "dropped": {}}
    survivors = {"alive": everyone, "dropped": without_victim}
    live = []
    for p, story, client in stories:
        if config.malicious:
            try:
                (response,) = client.receive(ConsistencyRequest(p, survivors[story]))
            except FedPrivacyError as exc:
                refusals[p] = str(exc)
                continue
            assert isinstance(response, ConsistencyResponse)
            signatures[story][p] = response.signature
        live.append((p, story, client))
    seeds: dict[int, tuple[int, ...]] = {}
    keys: dict[int, tuple[int, ...]] = {}
    for p, story, client in live:
        peers = client.mask_peers
        alive = tuple(sorted(peers & set(survivors[story])))
        dropped = tuple(sorted(peers - set(survivors[story])))
        forwarded = tuple(sorted(signatures[story].items())) if config.malicious else None
        try:
            (response,) = client.receive(UnmaskRequest(p, alive, dropped, forwarded))
        except FedPrivacyError as exc:
            refusals[p] = str(exc)
            continue
        assert isinstance(response, UnmaskResponse)
        seeds.update((p, limbs) for owner, limbs in response.seed_shares if owner == victim)
        keys.update((p, limbs) for owner, limbs in response.key_shares if owner == victim)
    recovered = None
    t = config.threshold
    if len(seeds) >= t and len(keys) >= t:
        recovered = _strip_masks(config, victim, masked[victim], adverts, victim_peers, seeds, keys)
    honest_refusals = {p: why for p, why in refusals.items() if p not in corrupt}
    return EquivocationOutcome(t, len(seeds), len(keys), recovered, inputs[victim], honest_refusals)


def _rebuild(shares: dict[int, tuple[int, ...]], threshold: int) -> bytes:
    xs = tuple(sorted(shares)[:threshold])
    matrix = np.array([shares[x] for x in xs], dtype=np.uint64)
    return limbs_to_secret(shamir.reconstruct(matrix, xs).reshape(SECRET_LIMBS))


def _strip_masks(config, victim, upload, adverts, peers, seeds, keys) -> np.ndarray:
    seed = _rebuild(seeds, config.threshold)
    mask_private = _rebuild(keys, config.threshold)
    vector = np.array(upload.vector, dtype=dtype_of(config.modulus))
    masks = [(self_mask_key(config, seed, victim), True)]
    for peer in sorted(peers):
        secret = agree(mask_private, adverts[peer].mask_public_key)
        masks.append((pair_mask_key(config, secret, victim, peer), victim > peer))
    MaskExpander(config.modulus).apply_many(vector, masks)
    return vector


def run_key_substitution(
    config: SecAggConfig, victim: int, name: str = "key-substitution", policy: ClientPolicy | None = None,
    covered_by: SecAggConfig | None = None, weaken_partner_check: bool = False,
) -> EquivocationOutcome:
    """Substitute every key the victim sees; return what the server recovers of the victim's input.

    ``covered_by`` (a malicious full-graph config over the same parties): the victim's sum is the
    covered half of a joint advertisement (spec §14.8). Every party starts both sums jointly, the
    victim's verifying sum gets the honest jointly signed broadcast (so the real keys are
    authenticated), and the server substitutes the keys in the covered sum's unsigned broadcast.
    ``weaken_partner_check``: the victim's covered sum skips the comparison with the authenticated
    keys (a deliberately weakened client)."""
    identities, trust = make_identities(config.party_ids, DeterministicRandomness(f"{name}/identities"))

    def client_of(cfg: SecAggConfig, party: int, tag: str) -> SecAggClient:
        return SecAggClient(cfg, party, random_bytes=DeterministicRandomness(f"{name}/{tag}party-{party}"),
                            identity=identities[party] if cfg.malicious else None,
                            trust=trust if cfg.malicious else None, policy=policy)

    client = client_of(config, victim, "")
    victim_input = inputs_for(config)[victim]
    fake = DeterministicRandomness(f"{name}/server")
    peers = sorted(all_neighbourhoods(config)[victim])
    refusals: dict[int, str] = {}
    if covered_by is None:
        (advert,) = client.start()
    else:
        covered = {p: client if p == victim else client_of(config, p, "covered-") for p in config.party_ids}
        verifying = {p: client_of(covered_by, p, "verifying-") for p in config.party_ids}
        adverts = {}  # party -> (covered-sum advertisement, verifying-sum advertisement)
        for p in config.party_ids:
            (first,), (second,) = start_jointly(covered[p], verifying[p])
            adverts[p] = (first, second)
        advert = adverts[victim][0]
        honest = tuple(PeerKeys(p, second.channel_public_key, second.mask_public_key, second.signature,
                                first.channel_public_key, first.mask_public_key)
                       for p, (first, second) in sorted(adverts.items()) if p != victim)
        verifying[victim].receive(KeyBroadcast(victim, honest, True, True))  # the real keys, authenticated
        authenticated = verifying[victim].partner_keys
        assert authenticated is not None
        client.accept_partner_keys(authenticated)
        if weaken_partner_check:
            client._check_partner_authenticated = lambda message: None  # weakened on purpose
    fake_keys = {p: (generate_keypair(fake), generate_keypair(fake)) for p in peers}  # (channel, mask) pairs
    # The server cannot sign for the peers; in malicious mode it forwards the best it has: nothing
    # (or, for a covered sum, an unsigned broadcast as the protocol has it).
    signed = config.malicious and covered_by is None
    entries = tuple(PeerKeys(p, fake_keys[p][0][1], fake_keys[p][1][1], bytes(64) if signed else b"") for p in peers)
    try:
        (shares,) = client.receive(KeyBroadcast(victim, entries, signed))
    except FedPrivacyError as exc:
        refusals[victim] = str(exc)
        return EquivocationOutcome(config.threshold, 0, 0, None, victim_input, refusals)
    assert isinstance(shares, ShareKeys)
    seeds, keys = {}, {}
    for holder, ciphertext in shares.ciphertexts:
        secret = agree(fake_keys[holder][0][0], advert.channel_public_key)
        key_limbs, seed_limbs = decrypt_share(config, share_channel_key(config, secret, victim, holder), victim, holder, ciphertext)
        keys[holder], seeds[holder] = key_limbs, seed_limbs
    zero = np.zeros(SECRET_LIMBS, dtype=np.uint64)
    routed = []
    for p in peers:  # made-up shares from the made-up neighbours, so the victim goes on to mask
        secret = agree(fake_keys[p][0][0], advert.channel_public_key)
        routed.append((p, encrypt_share(config, share_channel_key(config, secret, p, victim), p, victim, zero, zero)))
    client.receive(RoutedShares(victim, tuple(routed)))
    (upload,) = client.submit_input(victim_input)
    recovered = None
    if len(seeds) >= config.threshold and len(keys) >= config.threshold:
        seed = _rebuild(seeds, config.threshold)
        vector = np.array(upload.vector, dtype=dtype_of(config.modulus))
        masks = [(self_mask_key(config, seed, victim), True)]
        for p in peers:  # the server knows the other half of every pair key
            secret = agree(fake_keys[p][1][0], advert.mask_public_key)
            masks.append((pair_mask_key(config, secret, victim, p), victim > p))
        MaskExpander(config.modulus).apply_many(vector, masks)
        recovered = vector
    return EquivocationOutcome(config.threshold, len(seeds), len(keys), recovered, victim_input, refusals)
