"""Identities for malicious-mode secure aggregation: who may sign, and what a signature covers.

A deployment gives every party an Ed25519 signing key (:class:`Identity`, kept by that party alone)
and every party the same :class:`TrustStore` (party id -> Ed25519 public key; how it is distributed
is the deployment's business -- :mod:`fedprivacy.adapters.identity` reads one from a JSON file). A
party refuses a signature by an id the store does not know. Threat model and rules:
``protocols/secagg/spec.md`` §14. What a signature reveals: that its key's owner took part in this
round with these public keys (advertisement), and that it saw this survivor set (consistency
check); both are visible to the server anyway.

The two signed statements are domain-separated and bound to the config digest (hence session,
round, party set, mode), so no signature of one round, usage or party can be replayed in another.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from ..encoding import domain_tag
from ..errors import InvalidParameters
from ..hazmat.identity import Signer, Verifier, generate_signing_key
from ..hazmat.prg import RandomSource, system_random_bytes
from .params import MAX_PARTY_ID, SecAggConfig

__all__ = [
    "Identity",
    "TrustStore",
    "advertisement_statement",
    "consistency_statement",
    "joint_advertisement_statement",
    "make_identities",
]


@dataclass(frozen=True)
class Identity:
    """A party's long-lived signing key. Secret: keep it on the party's device."""

    party_id: int
    signing_key: bytes = field(repr=False)
    signer: Signer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.party_id, int) or isinstance(self.party_id, bool) or not (1 <= self.party_id <= MAX_PARTY_ID):
            raise InvalidParameters("party ids are integers in [1, 2^32 - 1]")
        object.__setattr__(self, "signer", Signer(self.signing_key))

    @property
    def verify_key(self) -> bytes:
        return self.signer.verify_key

    def sign(self, statement: bytes) -> bytes:
        return self.signer.sign(statement)


class TrustStore(Mapping[int, bytes]):
    """Party id -> raw Ed25519 public key, validated once; each key parsed once for verification."""

    __slots__ = ("_keys", "_verifiers")

    def __init__(self, keys: Mapping[int, bytes] | Iterable[tuple[int, bytes]]) -> None:
        items = dict(keys.items() if isinstance(keys, Mapping) else keys)
        verifiers: dict[int, Verifier] = {}
        seen: set[bytes] = set()
        for party, key in items.items():
            if not isinstance(party, int) or isinstance(party, bool) or not (1 <= party <= MAX_PARTY_ID):
                raise InvalidParameters(f"trust store party ids are integers in [1, 2^32 - 1], got {party!r}")
            verifier = Verifier(key)
            if key in seen:
                raise InvalidParameters(f"trust store gives party {party} a key another party has")
            seen.add(key)
            verifiers[party] = verifier
        self._keys = {party: items[party] for party in sorted(items)}
        self._verifiers = verifiers

    def __getitem__(self, party: int) -> bytes:
        return self._keys[party]

    def __iter__(self) -> Iterator[int]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def verify(self, party: int, signature: bytes, statement: bytes) -> bool:
        """Whether ``party``'s key signed ``statement``; ``False`` for an unknown party too."""
        verifier = self._verifiers.get(party)
        return verifier is not None and verifier.verify(signature, statement)


def advertisement_statement(config: SecAggConfig, party: int, channel_public_key: bytes, mask_public_key: bytes) -> bytes:
    """What a party signs in round 0: its two X25519 public keys, for this config, party and round:
    tag("secagg", "advertise-keys", digest, round_index, party) ‖ C ‖ S (the tag's prefix is cached)."""
    return _advertisement_prefix(config.digest, config.round_index) + _INTEGER_PART + party.to_bytes(8, "big") + channel_public_key + mask_public_key


_INTEGER_PART = b"i" + (8).to_bytes(4, "big")  # how domain_tag encodes an integer part


@functools.lru_cache(maxsize=64)
def _advertisement_prefix(digest: bytes, round_index: int) -> bytes:
    return domain_tag("secagg", "advertise-keys", digest, round_index)


def joint_advertisement_statement(
    covered: SecAggConfig, verifying: SecAggConfig, party: int,
    covered_keys: tuple[bytes, bytes], verifying_keys: tuple[bytes, bytes],
) -> bytes:
    """What a party signs once for two sums advertised together (spec §14.8): both configs' digests
    (hence both rounds, party sets and modes), its id, and its two key pairs:
    tag("secagg", "joint-advertise-keys", digest_covered, digest_verifying, party) ‖ C ‖ S (covered
    sum) ‖ C ‖ S (verifying sum). The verifying sum's broadcast carries it with both key pairs; the
    covered sum's keys are then checked against it, not verified again."""
    return (domain_tag("secagg", "joint-advertise-keys", covered.digest, verifying.digest, party)
            + covered_keys[0] + covered_keys[1] + verifying_keys[0] + verifying_keys[1])


def consistency_statement(config: SecAggConfig, survivors: Iterable[int]) -> bytes:
    """What a party signs in the consistency check: the survivor set U3 of this config's round."""
    ids = sorted(survivors)
    listing = hashlib.sha256(b"".join(i.to_bytes(4, "big") for i in ids)).digest()
    return domain_tag("secagg", "consistency-check", config.digest, config.round_index, len(ids), listing)


def make_identities(
    party_ids: Iterable[int], random_source: RandomSource | None = None
) -> tuple[dict[int, Identity], TrustStore]:
    """Fresh identities for ``party_ids`` and the trust store naming them (simulations, tests, benches).

    ``random_source`` draws the keys (default: the OS CSPRNG); a real deployment provisions keys on
    each device instead and distributes only the public halves.
    """
    draw = system_random_bytes if random_source is None else random_source
    identities = {party: Identity(party, generate_signing_key(draw)) for party in party_ids}
    return identities, TrustStore({party: identity.verify_key for party, identity in identities.items()})

