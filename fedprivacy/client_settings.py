"""The client's own settings, parsed once for every front end: the command line and the Flower adapter.

A client's settings are its randomized-response parameters (:mod:`fedprivacy.ldp.settings`), its
budget cap and the knobs of its :class:`~fedprivacy.policy.ClientPolicy`. Each front end spells a
setting its own way -- ``--epsilon-cap`` on the command line, ``fedprivacy-epsilon-cap`` in a Flower
node config -- and hands this module a mapping keyed by the setting's plain name (``epsilon-cap``)
together with its :class:`SettingNames`, so both accept, default and refuse the same values with the
same words, each error naming the setting as its user wrote it. No I/O, no framework import.

Whose settings count (``protocols/submodel/spec.md``, "Client policy"): the client's own (the device,
the Flower *node* config) make its policy; anything the server side offers (a Flower *run* config) is
only a suggestion, taken if it is at least as private (:func:`rr_parameters_with_suggestion`,
:func:`epsilon_cap_with_suggestion`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .ddp.params import DDPPolicy
from .errors import InvalidParameters, PolicyViolation
from .ldp.params import RRParameters
from .ldp.settings import RRSettingNames, rr_parameters_from_settings
from .policy import ClientPolicy

__all__ = [
    "CLI_SETTINGS",
    "DDP_POLICY_SETTINGS",
    "FLOWER_SETTINGS",
    "POLICY_SETTINGS",
    "RR_SETTINGS",
    "SettingNames",
    "client_policy_from_settings",
    "epsilon_cap_from_settings",
    "epsilon_cap_with_suggestion",
    "rr_parameters_from_client_settings",
    "rr_parameters_with_suggestion",
]

# The randomized-response settings (one of: a preset, target epsilons, or the four probabilities).
RR_SETTINGS = ("cpp", "p1", "p2", "p3", "p4", "epsilon", "epsilon-1")
EPSILON_CAP = "epsilon-cap"
ALLOW_INSECURE = "allow-insecure"

# The client policy's knobs (fedprivacy.policy.ClientPolicy): setting -> (field, type).
POLICY_SETTINGS: dict[str, tuple[str, type]] = {
    "adversary": ("adversary", str),
    "corrupt-fraction": ("corrupt_fraction", float),
    "min-parties": ("min_parties", int),
    "max-allocation-bytes": ("max_allocation_bytes", int),
    "max-psu-attempts": ("max_psu_attempts", int),
    "min-psu-cohort": ("min_psu_cohort", int),
    "min-choosers": ("min_choosers", int),
    "row-survivor-fraction": ("row_survivor_fraction", float),
    ALLOW_INSECURE: ("allow_insecure", bool),
}

# The policy's distributed-DP requirements (fedprivacy.ddp.DDPPolicy): setting -> (field, type).
DDP_POLICY_SETTINGS: dict[str, tuple[str, type]] = {
    "ddp-min-noise-multiplier": ("minimum_noise_multiplier", float),
    "ddp-colluders": ("colluders", int),
    "ddp-delta": ("delta", float),
    "ddp-epsilon-cap": ("epsilon_cap", float),
    "ddp-required": ("required", bool),
}


@dataclass(frozen=True)
class SettingNames:
    """How a front end spells a setting: its ``prefix`` and the setting's plain name
    (``--`` + ``epsilon-cap`` on the command line, ``fedprivacy-`` + ``epsilon-cap`` for Flower)."""

    prefix: str

    def __call__(self, setting: str) -> str:
        return self.prefix + setting

    def settings(self, config: Mapping[str, object]) -> dict[str, object]:
        """The settings a config holds in this spelling, keyed by their plain names (others ignored)."""
        return {key[len(self.prefix):]: value for key, value in config.items() if key.startswith(self.prefix)}

    @property
    def rr(self) -> RRSettingNames:
        """The same spelling for :func:`fedprivacy.ldp.rr_parameters_from_settings`."""
        return RRSettingNames(self("cpp"), self("epsilon"), self("epsilon-1"),
                              (self("p1"), self("p2"), self("p3"), self("p4")), self(ALLOW_INSECURE))


CLI_SETTINGS = SettingNames("--")
FLOWER_SETTINGS = SettingNames("fedprivacy-")


def rr_parameters_from_client_settings(
    settings: Mapping[str, object],
    names: SettingNames,
    *,
    allow_insecure: bool,
    default: RRParameters | None = None,
    required: bool = False,
) -> RRParameters | None:
    """The randomized-response parameters ``settings`` name; ``default`` when they name none (without
    a default: None, or :class:`InvalidParameters` if ``required``). :class:`InvalidParameters` in the
    caller's terms for a bad or insecure setting."""
    if not (required or default is not None or any(settings.get(key) is not None for key in RR_SETTINGS)):
        return None
    return rr_parameters_from_settings(
        cpp=settings.get("cpp"), epsilon=settings.get("epsilon"), epsilon_1=settings.get("epsilon-1"),
        probabilities=[settings.get(f"p{i}") for i in range(1, 5)], allow_insecure=allow_insecure,
        default=default, names=names.rr,
    )


def epsilon_cap_from_settings(settings: Mapping[str, object], names: SettingNames) -> float | None:
    """The budget cap ``settings`` name (``epsilon-cap``: a number >= 0, ``inf`` for none), or None."""
    value = settings.get(EPSILON_CAP)
    if value is None:
        return None
    cap = _number(value, names(EPSILON_CAP))
    if not cap >= 0:
        raise InvalidParameters(f"{names(EPSILON_CAP)} must be >= 0")
    return cap


def client_policy_from_settings(settings: Mapping[str, object], names: SettingNames) -> ClientPolicy:
    """The client's :class:`~fedprivacy.policy.ClientPolicy` from its own settings: the knobs of
    :data:`POLICY_SETTINGS` and :data:`DDP_POLICY_SETTINGS`, its randomized-response parameters and its
    cap. Unset knobs keep the safe defaults; :class:`InvalidParameters` for a bad value."""
    changes: dict[str, object] = {}
    ddp = _typed_settings(settings, DDP_POLICY_SETTINGS, names)
    if ddp:
        changes["ddp"] = DDPPolicy(**ddp)  # type: ignore[arg-type]
    changes.update(_typed_settings(settings, POLICY_SETTINGS, names))
    own = rr_parameters_from_client_settings(settings, names, allow_insecure=bool(changes.get("allow_insecure", False)))
    if own is not None:
        changes["rr_parameters"] = own
    cap = epsilon_cap_from_settings(settings, names)
    if cap is not None:
        changes["epsilon_cap"] = cap
    return ClientPolicy(**changes)  # type: ignore[arg-type]


def rr_parameters_with_suggestion(
    policy: ClientPolicy, own: Mapping[str, object], suggested: Mapping[str, object], names: SettingNames
) -> RRParameters:
    """The parameters a client uses: its own when its settings (``own``, from which ``policy`` was
    built) name any; else the ``suggested`` ones if at least as private as the policy's
    (:class:`~fedprivacy.errors.PolicyViolation` otherwise, an invalid suggestion included); else the
    policy's."""
    if any(own.get(key) is not None for key in RR_SETTINGS):
        policy.check_rr(policy.rr_parameters)
        return policy.rr_parameters
    try:
        offer = rr_parameters_from_client_settings(suggested, names, allow_insecure=True)  # judged by the policy
    except InvalidParameters as exc:
        raise PolicyViolation("rr_parameters", f"the run config's randomized response is invalid: {exc}") from None
    return policy.rr_parameters if offer is None else policy.accept_rr(offer)


def epsilon_cap_with_suggestion(policy: ClientPolicy, suggested: Mapping[str, object], names: SettingNames) -> float:
    """The cap a client uses: its own, lowered by the ``suggested`` one if that is smaller."""
    return policy.accept_cap(epsilon_cap_from_settings(suggested, names))


def _typed_settings(
    settings: Mapping[str, object], table: Mapping[str, tuple[str, type]], names: SettingNames
) -> dict[str, object]:
    """``{field: value}`` for the settings of ``table`` that are set, each checked against its type."""
    fields: dict[str, object] = {}
    for setting, (field_name, kind) in table.items():
        if setting not in settings:
            continue
        value, key = settings[setting], names(setting)
        if kind is bool:
            if not isinstance(value, bool):
                raise InvalidParameters(f"{key} must be true or false")
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidParameters(f"{key} must be an integer")
        elif kind is float:
            value = _number(value, key)
        else:
            value = str(value)
        fields[field_name] = value
    return fields


def _number(value: object, name: str) -> float:
    if isinstance(value, bool):
        raise InvalidParameters(f"{name} must be a number")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidParameters(f"{name} must be a number, got {value!r}") from None
    return number
