"""Privacy events: immutable descriptions of one release, enough to account for it without the data.

Following google/differential-privacy's dp_event contract: an event names the mechanism exactly and
carries what an accountant needs; fields are never removed or re-purposed (a changed mechanism gets
a new ``mechanism`` name).

``double-randomized-response`` (kind ``release``): in round ``round_index`` the client answered every
index of a union of ``indices_reported`` ids with the double randomized response of parameters
``parameters`` (p1..p4, exact fractions) from memo epoch ``epoch``; ``indices_new`` of them got their
permanent answer this round; after it, no index has drawn more than ``max_reports`` reports from its
memo in this epoch. ``epsilon_report`` (one report) and ``epsilon_inf`` (the memo's cap) are per index
under ``relation``. Kind ``refusal`` records a round the budget filter (or the client's policy, with
``parameters["reason"]``) declined (costs nothing). Two kinds record the client's policy and cost
nothing: ``cap`` lowers the ledger's cap to ``parameters["epsilon_cap"]`` from that line on (a cap
only ever goes down), and ``psu-attempt`` records that the client joined PSU attempt
``parameters["attempt"]`` of round ``round_index`` (so the attempts per round index survive restarts).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction

from ..errors import DecodeError
from ..ldp.params import NeighbourRelation, RRParameters

__all__ = ["PrivacyEvent", "UpdateEvent", "MECHANISM_DOUBLE_RR", "MECHANISM_DDG", "EVENT_KINDS", "library_version"]

MECHANISM_DOUBLE_RR = "double-randomized-response"
EVENT_KINDS = ("release", "refusal", "cap", "psu-attempt")


def library_version() -> str:
    from .. import __version__

    return __version__


@dataclass(frozen=True)
class PrivacyEvent:
    client_id: str
    round_index: int
    kind: str  # "release" | "refusal"
    mechanism: str
    parameters: dict[str, str] = field(default_factory=dict)
    relation: str = NeighbourRelation.ADD_REMOVE_ONE.value
    epoch: int = 0
    indices_reported: int = 0
    indices_new: int = 0
    max_reports: int = 0
    epsilon_report: float = 0.0
    epsilon_inf: float = 0.0
    library_version: str = field(default_factory=library_version)

    def params(self) -> RRParameters:
        p = self.parameters
        return RRParameters(Fraction(p["p1"]), Fraction(p["p2"]), Fraction(p["p3"]), Fraction(p["p4"]), allow_insecure=True)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> PrivacyEvent:
        if not isinstance(data, dict):
            raise DecodeError("an event must be a JSON object")
        expected = {f for f in cls.__dataclass_fields__}
        if set(data) != expected:
            raise DecodeError(f"event fields differ from the schema: {sorted(set(data) ^ expected)}")
        types: dict[str, type | tuple[type, ...]] = {
            "client_id": str, "round_index": int, "kind": str, "mechanism": str, "parameters": dict,
            "relation": str, "epoch": int, "indices_reported": int, "indices_new": int, "max_reports": int,
            "epsilon_report": (int, float), "epsilon_inf": (int, float), "library_version": str,
        }
        for name, kind in types.items():
            if not isinstance(data[name], kind) or isinstance(data[name], bool):
                raise DecodeError(f"event field {name} has the wrong type")
        if data["kind"] not in EVENT_KINDS:
            raise DecodeError(f"unknown event kind {data['kind']!r}")
        event = cls(**data)
        if event.mechanism != MECHANISM_DOUBLE_RR:
            raise DecodeError(f"unknown mechanism {event.mechanism!r}")
        if min(event.round_index, event.epoch, event.indices_reported, event.indices_new, event.max_reports) < 0:
            raise DecodeError("negative counts in event")
        if event.kind == "release":
            if event.relation != NeighbourRelation.ADD_REMOVE_ONE.value:
                raise DecodeError(f"unsupported relation {event.relation!r}")
            if event.max_reports < 1:
                raise DecodeError("a release draws at least one report")
            try:
                event.params()
            except Exception as exc:  # noqa: BLE001
                raise DecodeError(f"invalid parameters in event: {exc}") from None
        if event.kind == "cap":
            cap = event.parameters.get("epsilon_cap")
            try:
                if not isinstance(cap, str) or not float(cap) >= 0:
                    raise ValueError
            except ValueError:
                raise DecodeError("a cap line needs parameters.epsilon_cap >= 0") from None
        if event.kind == "psu-attempt" and not (
            isinstance(event.parameters.get("attempt"), str) and event.parameters["attempt"].isdigit()
        ):
            raise DecodeError("a psu-attempt line needs parameters.attempt")
        return event


MECHANISM_DDG = "distributed-discrete-gaussian"


@dataclass(frozen=True)
class UpdateEvent:
    """One round's update release under distributed DP (kind ``update-release``), or a round the
    update filter refused (kind ``update-refusal``, costs nothing).

    The client added N_Z(0, ``row_variance``) to each of ``row_coordinates`` coordinates and
    N_Z(0, ``dense_variance``) to each of ``dense_coordinates``, after clipping its whole upload to
    integer L2 norm ``sensitivity``; it counted on at least ``row_floor`` / ``dense_floor`` noise
    contributors per row / dense row. ``rho`` (zCDP, rounded up) is what it was charged, under the
    relation "one client's whole upload in one round replaced"; ``delta`` is the delta its reports use.
    """

    client_id: str
    round_index: int
    kind: str  # "update-release" | "update-refusal"
    mechanism: str = MECHANISM_DDG
    sensitivity: int = 0
    row_variance: int = 0
    dense_variance: int = 0
    row_floor: int = 0
    dense_floor: int = 0
    row_coordinates: int = 0
    dense_coordinates: int = 0
    rho: float = 0.0
    delta: float = 0.0
    library_version: str = field(default_factory=library_version)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> UpdateEvent:
        if not isinstance(data, dict):
            raise DecodeError("an event must be a JSON object")
        expected = set(cls.__dataclass_fields__)
        if set(data) != expected:
            raise DecodeError(f"update event fields differ from the schema: {sorted(set(data) ^ expected)}")
        kinds: dict[str, type | tuple[type, ...]] = {"client_id": str, "kind": str, "mechanism": str,
                                                     "library_version": str, "rho": (int, float), "delta": (int, float)}
        for name in expected:
            kind = kinds.get(name, int)
            if not isinstance(data[name], kind) or isinstance(data[name], bool):
                raise DecodeError(f"update event field {name} has the wrong type")
        if data["mechanism"] != MECHANISM_DDG or data["kind"] not in ("update-release", "update-refusal"):
            raise DecodeError("unknown update event mechanism or kind")
        event = cls(**data)
        counts = (event.round_index, event.sensitivity, event.row_variance, event.dense_variance, event.row_floor,
                  event.dense_floor, event.row_coordinates, event.dense_coordinates)
        if min(counts) < 0 or not (event.rho >= 0 and 0 <= event.delta < 1):
            raise DecodeError("negative or out-of-range values in update event")
        if event.kind == "update-release":
            if min(event.sensitivity, event.row_variance, event.dense_variance, event.row_floor, event.dense_floor) < 1:
                raise DecodeError("an update release has positive sensitivity, variances and floors")
            # Never below what its own parameters give (a relative 1e-9 allows another platform's libm).
            if not (0 < event.delta < 1) or event.rho < event.charged() * (1 - 1e-9):
                raise DecodeError("an update release's rho is below what its parameters give")
        return event

    def charged(self) -> float:
        """rho recomputed from the recorded parameters (:func:`fedprivacy.ddp.params.release_rho`)."""
        from ..ddp.params import release_rho

        return release_rho(self.sensitivity, [(self.row_variance, self.row_floor, self.row_coordinates),
                                              (self.dense_variance, self.dense_floor, self.dense_coordinates)])
