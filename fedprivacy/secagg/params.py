"""Parameters of a secure-aggregation round: graph degree k, Shamir threshold t, and the session config.

Threat model of the parameter choice (``protocols/secagg/spec.md`` §3; Bell et al., CCS 2020,
Section 4; the search mirrors the reference finder in google-parfait/federated-compute): among n
clients at most a fraction ``gamma`` is corrupt (colluding with the server) and at most a fraction
``delta`` drops out. We need

* security (2^-40 in total, 2^-41 per event): (a) the honest survivors stay connected in the
  randomly relabelled Harary graph H(n, k) -- a disconnected component would reveal its partial sum;
  (b) no client has t or more corrupt neighbours -- they could rebuild its secrets;
* correctness (2^-20): every client keeps at least t surviving share holders.

``curious``: the server follows the protocol but reads everything (t > #corrupt neighbours).
``semi-malicious``: the server may lie about who dropped (equivocate). Honest clients never release
both share kinds of one peer, so with t > (k + #corrupt neighbours) / 2 no lie can gather t shares
of both kinds of an honest client's secrets; the search moves t up accordingly.

``malicious``: the server may also forge or replace messages and run a split (different survivor
sets for different holders). Identity keys stop it from inventing parties or swapping keys, and the
consistency check makes a holder release shares of a peer v only for a survivor set that t of v's
share holders signed. An honest holder signs one set, so two sets each carrying t signatures of v's
holders need 2 (t - c_v) <= h_v, i.e. 2t <= h_v + 2 c_v (h_v honest, c_v corrupt holders); safe
iff t > (k + c_v) / 2 with k holders (k + 1 with the owner in the full graph, where h + c = n).
That is the semi-malicious formula, so the same (k, t) search applies; what changes is that c_v
really counts corrupt clients (no Sybils, no key substitution). On the full graph a client needs only
a *quorum* of signers, q > (n + c) / 2 (``SecAggConfig.quorum``, :func:`consistency_quorum`): no two
sets can both collect one. See protocols/secagg/spec.md §14.2.

The full graph (classic SecAgg, k = n - 1) needs t >= ceil((1 - delta) n) and t > ceil(gamma n)
(curious) or t > (n + ceil(gamma n)) / 2 (semi-malicious, malicious).
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from enum import Enum
from itertools import pairwise

from ..encoding import ProtocolCode, Reader, Writer
from ..errors import DecodeError, InvalidParameters
from ..hazmat.field import Modulus

__all__ = [
    "Adversary",
    "GraphParameters",
    "SecAggConfig",
    "find_graph_parameters",
    "check_graph_parameters",
    "minimum_threshold",
    "majority_quorum",
    "consistency_quorum",
    "MAX_CLIENTS",
    "MAX_DIM",
]

MAX_CLIENTS = 1_000_000
MAX_DIM = 1 << 30
MAX_PARTY_ID = (1 << 32) - 1
SECURITY_BITS_PER_EVENT = 41  # 2^-40 split over two events
CORRECTNESS_BITS = 20
_NUDGE = 1e-14  # keeps float rounding from ever erring on the unsafe side


class Adversary(str, Enum):
    CURIOUS = "curious"
    SEMI_MALICIOUS = "semi-malicious"
    MALICIOUS = "malicious"  # needs identity keys and the consistency check (SecAggConfig.malicious)


@dataclass(frozen=True)
class GraphParameters:
    """Degree k of the Harary graph (k = n - 1: full graph) and Shamir threshold t."""

    clients: int
    neighbours: int
    threshold: int

    @property
    def full_graph(self) -> bool:
        return self.neighbours == self.clients - 1


def _validate_rates(clients: int, corrupt_fraction: float, dropout_fraction: float, adversary: Adversary) -> None:
    if not isinstance(clients, int) or clients < 2:
        raise InvalidParameters(f"secure aggregation needs at least 2 clients, got {clients!r}")
    if clients > MAX_CLIENTS:
        raise InvalidParameters(f"at most {MAX_CLIENTS} clients per round, got {clients}")
    for name, value in (("corrupt_fraction", corrupt_fraction), ("dropout_fraction", dropout_fraction)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value < 1):
            raise InvalidParameters(f"{name} must be in [0, 1), got {value!r}")
    if adversary is Adversary.CURIOUS and corrupt_fraction + dropout_fraction > 0.9:
        raise InvalidParameters("a curious-server setting needs corrupt_fraction + dropout_fraction <= 0.9")
    if adversary is not Adversary.CURIOUS and corrupt_fraction + 2 * dropout_fraction > 0.9:
        raise InvalidParameters(f"a {adversary.value} setting needs corrupt_fraction + 2 * dropout_fraction <= 0.9")


def _hypergeometric_pmf(population: int, marked: int, draws: int) -> list[float]:
    """P[X = x] for x = 0..draws, X the marked count in ``draws`` draws without replacement."""

    def log_choose(a: int, b: int) -> float:
        return math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)

    total = log_choose(population, draws)
    pmf = []
    for x in range(draws + 1):
        if x > marked or draws - x > population - marked:
            pmf.append(0.0)
        else:
            pmf.append(math.exp(log_choose(marked, x) + log_choose(population - marked, draws - x) - total))
    return pmf


def _log_disconnection_bound(clients: int, neighbours: int, bad: int) -> float:
    """ln of a union bound on H(n, k) losing connectivity when ``bad`` random nodes are removed.

    Disconnecting a Harary graph takes k/2 consecutive bad ring positions in two disjoint places:
    about n (n - k - 1) / 2 gap pairs, each all bad with probability B! (n - k)! / (n! (B - k)!).
    """
    if neighbours > bad:
        return -math.inf
    return (
        math.log(clients)
        + math.log(clients - neighbours - 1)
        - math.log(2)
        + math.lgamma(bad + 1)
        + math.lgamma(clients - neighbours + 1)
        - math.lgamma(clients + 1)
        - math.lgamma(bad - neighbours + 1)
    )


def _counts(clients: int, corrupt_fraction: float, dropout_fraction: float) -> tuple[int, int, int]:
    corrupt = math.floor((corrupt_fraction + _NUDGE) * clients)
    dropped = math.floor((dropout_fraction + _NUDGE) * clients)
    surviving = math.ceil((1 - dropout_fraction - _NUDGE) * clients)
    return corrupt, dropped, surviving


def _corrupt_neighbour_bound(clients: int, neighbours: int, corrupt: int) -> int:
    """Smallest a with P[#corrupt neighbours > a] < 2^-41 / n (hypergeometric tail)."""
    security_tail = 2.0**-SECURITY_BITS_PER_EVENT / clients
    corrupt_pmf = _hypergeometric_pmf(clients, corrupt, neighbours)
    for a in range(neighbours + 1):
        if math.fsum(corrupt_pmf[a + 1 :]) < security_tail:
            return a
    return neighbours


def minimum_threshold(
    clients: int,
    neighbours: int,
    corrupt_fraction: float = 0.05,
    adversary: Adversary | str = Adversary.SEMI_MALICIOUS,
) -> int:
    """The smallest Shamir threshold a *client* accepts for a round of ``clients`` parties and degree
    ``neighbours`` (``clients - 1``: the full graph), assuming at most ``corrupt_fraction`` of the
    parties collude with the server. Security only: whether t also leaves enough survivors is the
    server's problem (a too-high t only makes the round abort).

    * curious: t must exceed the corrupt share holders a (with probability 1 - 2^-41/n for a sparse
      graph; a = ceil(gamma n) on the full graph), so t >= a + 1;
    * every other adversary (semi-malicious, and anything stronger): a server that lies about who
      dropped can collect one kind of share from each honest holder and both kinds from corrupt ones,
      so t > (holders + a) / 2, i.e. t >= floor((holders + a) / 2) + 1 with holders = k (sparse) or n
      (full graph, the owner holds a share too).

    Never above what :func:`find_graph_parameters` picks for the same (n, k) and rates, so a server
    using that search with the same ``corrupt_fraction`` and adversary always satisfies its clients.
    """
    adversary = Adversary(adversary)
    if not isinstance(clients, int) or isinstance(clients, bool) or not 2 <= clients <= MAX_CLIENTS:
        raise InvalidParameters(f"clients must be an integer in [2, {MAX_CLIENTS}], got {clients!r}")
    if not isinstance(neighbours, int) or isinstance(neighbours, bool) or not 1 <= neighbours < clients:
        raise InvalidParameters(f"neighbours must be an integer in [1, {clients - 1}], got {neighbours!r}")
    if not (isinstance(corrupt_fraction, (int, float)) and math.isfinite(corrupt_fraction) and 0 <= corrupt_fraction < 1):
        raise InvalidParameters(f"corrupt_fraction must be in [0, 1), got {corrupt_fraction!r}")
    if neighbours == clients - 1:
        holders, corrupt = clients, math.ceil(corrupt_fraction * clients - _NUDGE)
    else:
        holders = neighbours
        corrupt = _corrupt_neighbour_bound(clients, neighbours, _counts(clients, corrupt_fraction, 0.0)[0])
    if adversary is Adversary.CURIOUS:
        return max(2, corrupt + 1)
    return max(2, (holders + corrupt) // 2 + 1)


def _threshold_window(
    clients: int, neighbours: int, corrupt_fraction: float, dropout_fraction: float, adversary: Adversary
) -> tuple[int, int] | None:
    """(t_low, t_high): safe thresholds are t_low < t <= t_high. None if the graph may disconnect."""
    corrupt, dropped, surviving = _counts(clients, corrupt_fraction, dropout_fraction)
    if _log_disconnection_bound(clients, neighbours, corrupt + dropped) >= -SECURITY_BITS_PER_EVENT * math.log(2):
        return None
    correctness_tail = 2.0**-CORRECTNESS_BITS / clients
    t_low = _corrupt_neighbour_bound(clients, neighbours, corrupt)
    if adversary is not Adversary.CURIOUS:  # semi-malicious and malicious: t > (k + c) / 2
        t_low = math.ceil((t_low + neighbours - 1.25) / 2)
    # t_high: smallest s with P[#surviving neighbours <= s] >= correctness_tail.
    survivor_pmf = _hypergeometric_pmf(clients, surviving, neighbours)
    t_high = neighbours
    for s in range(neighbours + 1):
        if math.fsum(survivor_pmf[: s + 1]) >= correctness_tail:
            t_high = s
            break
    return t_low, t_high


def _full_graph_minimum(clients: int, corrupt_fraction: float, dropout_fraction: float, adversary: Adversary) -> int:
    """Smallest threshold the full graph accepts."""
    minimum = max(2, math.ceil((1 - dropout_fraction) * clients - _NUDGE))
    if adversary is Adversary.CURIOUS:
        minimum = max(minimum, math.ceil(corrupt_fraction * clients - _NUDGE) + 1)
    else:  # t > (n + a) / 2 with a = ceil(gamma n) corrupt holders (see minimum_threshold)
        minimum = max(minimum, (clients + math.ceil(corrupt_fraction * clients - _NUDGE)) // 2 + 1)
    return minimum


def find_graph_parameters(
    clients: int,
    corrupt_fraction: float = 0.05,
    dropout_fraction: float = 0.1,
    adversary: Adversary | str = Adversary.CURIOUS,
) -> GraphParameters:
    """The smallest even k (and its smallest safe t) meeting 2^-40 security and 2^-20 correctness.

    Falls back to the full graph (k = n - 1) when no sparse degree qualifies (small n), and raises
    :class:`InvalidParameters` when not even the full graph can be both secure and correct.
    """
    adversary = Adversary(adversary)
    _validate_rates(clients, corrupt_fraction, dropout_fraction, adversary)
    for neighbours in range(2, clients - 1, 2):
        window = _threshold_window(clients, neighbours, corrupt_fraction, dropout_fraction, adversary)
        if window is not None and max(window[0] + 1, 2) <= window[1]:  # t >= 2 must fit the window too
            return GraphParameters(clients, neighbours, max(window[0] + 1, 2))
    threshold = _full_graph_minimum(clients, corrupt_fraction, dropout_fraction, adversary)
    if threshold > clients:
        raise InvalidParameters(
            f"no secure and correct parameters for n={clients}, corrupt_fraction={corrupt_fraction}, "
            f"dropout_fraction={dropout_fraction} ({adversary.value})"
        )
    return GraphParameters(clients, clients - 1, threshold)


def check_graph_parameters(
    clients: int,
    neighbours: int,
    threshold: int | None = None,
    corrupt_fraction: float = 0.05,
    dropout_fraction: float = 0.1,
    adversary: Adversary | str = Adversary.CURIOUS,
) -> GraphParameters:
    """Validate a caller-fixed k (and t, or pick the smallest safe t) against the same bounds."""
    adversary = Adversary(adversary)
    _validate_rates(clients, corrupt_fraction, dropout_fraction, adversary)
    if not isinstance(neighbours, int) or isinstance(neighbours, bool):
        raise InvalidParameters(f"neighbours must be an integer, got {neighbours!r}")
    if neighbours == clients - 1:
        minimum = _full_graph_minimum(clients, corrupt_fraction, dropout_fraction, adversary)
        if threshold is None:
            threshold = minimum
        if not (minimum <= threshold <= clients):
            raise InvalidParameters(
                f"full graph with n={clients}: threshold must be in [{minimum}, {clients}] for "
                f"corrupt_fraction={corrupt_fraction}, dropout_fraction={dropout_fraction} ({adversary.value}); "
                f"got {threshold}"
            )
        return GraphParameters(clients, neighbours, threshold)
    if neighbours < 2 or neighbours % 2 or neighbours >= clients - 1:
        raise InvalidParameters(
            f"neighbours must be even and in [2, {clients - 2}], or {clients - 1} for the full graph; got {neighbours}"
        )
    window = _threshold_window(clients, neighbours, corrupt_fraction, dropout_fraction, adversary)
    if window is None:
        raise InvalidParameters(
            f"k={neighbours} is insecure for n={clients}: the honest survivors may disconnect with probability "
            f">= 2^-{SECURITY_BITS_PER_EVENT} (corrupt_fraction={corrupt_fraction}, dropout_fraction={dropout_fraction})"
        )
    t_low, t_high = window
    if threshold is None:
        threshold = max(t_low + 1, 2)
    if threshold <= t_low or threshold < 2:
        raise InvalidParameters(
            f"threshold {threshold} is insecure with k={neighbours}: corrupt neighbours reach it with probability "
            f">= 2^-{SECURITY_BITS_PER_EVENT}/n; need t >= {max(t_low + 1, 2)}"
        )
    if threshold > t_high:
        raise InvalidParameters(
            f"threshold {threshold} is incorrect with k={neighbours}: a client keeps fewer surviving neighbours "
            f"with probability >= 2^-{CORRECTNESS_BITS}/n; need t <= {t_high}"
            + ("" if t_high > t_low else " (no threshold works for this k; choose a larger k)")
        )
    return GraphParameters(clients, neighbours, threshold)


_CONFIG_MESSAGE_TYPE = 0
# Malicious mode: the same fields plus the consistency quorum (u32); selects signed keys and the
# consistency check. Type 10 (the same without the quorum) is retired and refused.
_MALICIOUS_CONFIG_MESSAGE_TYPE = 16
_RETIRED_MALICIOUS_CONFIG_MESSAGE_TYPE = 10


def majority_quorum(clients: int, corrupt: int) -> int:
    """The fewest signers of one survivor set such that no two different sets can both have that many
    when at most ``corrupt`` parties sign twice: floor((n + c) / 2) + 1 (two such signer sets among n
    parties share more than c members, so an honest one would have signed both). Spec §14.2."""
    return (clients + corrupt) // 2 + 1


def consistency_quorum(clients: int, corrupt_fraction: float = 0.05) -> int:
    """The quorum of a malicious full-graph round for a corrupt fraction gamma: a majority over
    c = ceil(gamma n) corrupt parties (the full-graph corrupt count of :func:`minimum_threshold`)."""
    return majority_quorum(clients, math.ceil(corrupt_fraction * clients - _NUDGE))


@dataclass(frozen=True)
class SecAggConfig:
    """Everything the parties of one round must agree on before it starts; public.

    ``digest`` (SHA-256 of the canonical encoding) salts every key derivation and is bound into
    every ciphertext, so parties holding different configs cannot interoperate silently.

    ``malicious`` selects the active-adversary variant (signed key advertisements and the
    consistency check, spec §14); it changes the config's message type (16 instead of 0), hence the
    digest, so a server cannot run one party in each mode.

    ``quorum`` (malicious mode on the full graph only; 0 elsewhere): how many valid consistency
    signatures over its survivor set a client requires before it releases shares, at least
    floor(n / 2) + 1 (a majority: no two sets can both collect one). Each client checks it against its
    own policy (``ClientPolicy.check_secagg_config``: a majority over the corrupt parties it assumes).
    Left 0 on a malicious full graph it becomes t, the count required before it existed.
    """

    party_ids: tuple[int, ...]
    dim: int
    modulus: Modulus
    neighbours: int
    threshold: int
    session_id: bytes
    round_index: int = 0
    malicious: bool = False
    quorum: int = 0
    digest: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = tuple(self.party_ids)
        object.__setattr__(self, "party_ids", ids)
        if len(ids) < 2 or len(ids) > MAX_CLIENTS:
            raise InvalidParameters(f"a round needs 2..{MAX_CLIENTS} parties, got {len(ids)}")
        if any(not isinstance(i, int) or isinstance(i, bool) or not (1 <= i <= MAX_PARTY_ID) for i in ids):
            raise InvalidParameters("party ids must be integers in [1, 2^32 - 1]")
        if any(a >= b for a, b in pairwise(ids)):
            raise InvalidParameters("party ids must be sorted and distinct")
        if not isinstance(self.dim, int) or not (1 <= self.dim <= MAX_DIM):
            raise InvalidParameters(f"dim must be an integer in [1, {MAX_DIM}], got {self.dim!r}")
        try:
            object.__setattr__(self, "modulus", Modulus(self.modulus))
        except ValueError:
            raise InvalidParameters(f"unknown modulus {self.modulus!r}") from None
        n = len(ids)
        k = self.neighbours
        if not isinstance(k, int) or not (k == n - 1 or (2 <= k < n - 1 and k % 2 == 0)):
            raise InvalidParameters(f"neighbours must be even in [2, {n - 2}] or {n - 1} (full graph), got {k!r}")
        if not isinstance(self.threshold, int) or not (2 <= self.threshold <= k + 1):
            raise InvalidParameters(f"threshold must be in [2, neighbours + 1 = {k + 1}], got {self.threshold!r}")
        if not isinstance(self.session_id, bytes) or not (16 <= len(self.session_id) <= 64):
            raise InvalidParameters("session_id must be 16..64 bytes")
        if not isinstance(self.round_index, int) or not (0 <= self.round_index < 1 << 64):
            raise InvalidParameters("round_index must be in [0, 2^64)")
        if not isinstance(self.malicious, bool):
            raise InvalidParameters("malicious must be a bool")
        if not isinstance(self.quorum, int) or isinstance(self.quorum, bool):
            raise InvalidParameters(f"quorum must be an integer, got {self.quorum!r}")
        if not (self.malicious and k == n - 1):
            object.__setattr__(self, "quorum", 0)  # only a malicious full graph has one
        elif self.quorum == 0:
            object.__setattr__(self, "quorum", self.threshold)
        elif not (n // 2 + 1 <= self.quorum <= n):
            raise InvalidParameters(f"quorum must be a majority of the {n} parties, in [{n // 2 + 1}, {n}], got {self.quorum}")
        object.__setattr__(self, "digest", hashlib.sha256(self.encode()).digest())

    @classmethod
    def create(
        cls,
        party_ids: list[int] | tuple[int, ...] | range,
        dim: int,
        modulus: Modulus = Modulus.U32,
        *,
        corrupt_fraction: float = 0.05,
        dropout_fraction: float = 0.1,
        adversary: Adversary | str = Adversary.SEMI_MALICIOUS,
        neighbours: int | None = None,
        threshold: int | None = None,
        full_graph: bool = False,
        session_id: bytes | None = None,
        round_index: int = 0,
        quorum: int | None = None,
    ) -> SecAggConfig:
        """A validated config: (k, t) searched from the rates, or the caller's k / t checked against them.

        The default adversary is semi-malicious: what a client's default
        :class:`~fedprivacy.policy.ClientPolicy` accepts (a curious-server threshold is refused by it).
        ``adversary=Adversary.MALICIOUS`` also sets ``malicious`` (every party then needs identities);
        on the full graph the consistency ``quorum`` is then the majority over ``corrupt_fraction``
        (:func:`consistency_quorum`) unless given."""
        ids = tuple(sorted(party_ids))
        n = len(ids)
        if full_graph:
            if neighbours not in (None, n - 1):
                raise InvalidParameters("full_graph=True fixes neighbours to n - 1")
            neighbours = n - 1
        if neighbours is None:
            if threshold is not None:
                raise InvalidParameters("a fixed threshold needs a fixed neighbours (or full_graph=True)")
            graph = find_graph_parameters(n, corrupt_fraction, dropout_fraction, adversary)
        else:
            graph = check_graph_parameters(n, neighbours, threshold, corrupt_fraction, dropout_fraction, adversary)
        return cls(
            party_ids=ids,
            dim=dim,
            modulus=modulus,
            neighbours=graph.neighbours,
            threshold=graph.threshold,
            session_id=os.urandom(32) if session_id is None else session_id,
            round_index=round_index,
            malicious=Adversary(adversary) is Adversary.MALICIOUS,
            quorum=consistency_quorum(n, corrupt_fraction) if quorum is None else quorum,
        )

    @property
    def clients(self) -> int:
        return len(self.party_ids)

    @property
    def full_graph(self) -> bool:
        return self.neighbours == len(self.party_ids) - 1

    def encode(self) -> bytes:
        writer = Writer(ProtocolCode.SECAGG, _MALICIOUS_CONFIG_MESSAGE_TYPE if self.malicious else _CONFIG_MESSAGE_TYPE)
        writer.blob(self.session_id).u64(self.round_index).u8(self.modulus).u32(self.dim)
        writer.u32(self.neighbours).u32(self.threshold).id_list(self.party_ids)
        if self.malicious:
            writer.u32(self.quorum)
        return writer.finish()

    @classmethod
    def decode(cls, data: bytes) -> SecAggConfig:
        reader = Reader(data, ProtocolCode.SECAGG)
        kind = reader.u8()
        if kind == _RETIRED_MALICIOUS_CONFIG_MESSAGE_TYPE:
            raise DecodeError("a malicious-mode config without its consistency quorum (type 10) is retired")
        if kind not in (_CONFIG_MESSAGE_TYPE, _MALICIOUS_CONFIG_MESSAGE_TYPE):
            raise DecodeError("not a secure-aggregation config")
        session_id = bytes(reader.blob(64))
        round_index = reader.u64()
        modulus = reader.u8()
        dim = reader.u32()
        neighbours = reader.u32()
        threshold = reader.u32()
        party_ids = reader.id_list(MAX_CLIENTS)
        malicious = kind == _MALICIOUS_CONFIG_MESSAGE_TYPE
        quorum = reader.u32() if malicious else 0
        reader.done()
        try:
            config = cls(
                party_ids, dim, Modulus(modulus), neighbours, threshold, session_id, round_index,
                malicious=malicious, quorum=quorum,
            )
        except (InvalidParameters, ValueError) as exc:
            raise DecodeError(f"invalid config: {exc}") from None
        if config.quorum != quorum:  # canonical: 0 only off the full graph, never a default filled in
            raise DecodeError("a malicious config's quorum is 0 exactly when the graph is not full")
        return config
