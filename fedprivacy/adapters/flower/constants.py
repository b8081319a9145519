"""Names shared by the workflow and the mod: the record keys, the stages and the config keys.

The stage names are Flower's (``setup``, ``share_keys``, ``collect_masked_vectors``, ``unmask``); the
record keys are our own, so a message of Flower's SecAgg+ never reaches our mod by mistake (or the
other way round): the mod answers it with an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["RECORD_KEY_CONFIGS", "RECORD_KEY_STATE", "Stage", "Key"]

RECORD_KEY_CONFIGS = "fedprivacy_secaggplus_configs"
"""The ``ConfigRecord`` of a train message (both ways) that carries the protocol message."""

RECORD_KEY_STATE = "fedprivacy_secaggplus_state"
"""The ``ConfigRecord`` in a node's ``context.state`` that holds its client between two messages."""


class Stage:
    """The four stages, in order; each is one ``send_and_receive`` of the Grid. Malicious mode (a trust
    store on the server, identities on the nodes; ``protocols/secagg/spec.md`` §14) adds two:
    ``identify`` before ``setup`` (each node names the party id of its identity) and
    ``consistency_check`` between ``collect_masked_vectors`` and ``unmask``."""

    IDENTIFY = "identify"
    SETUP = "setup"
    SHARE_KEYS = "share_keys"
    COLLECT_MASKED_VECTORS = "collect_masked_vectors"
    CONSISTENCY_CHECK = "consistency_check"
    UNMASK = "unmask"

    def __new__(cls) -> Self:
        raise TypeError(f"{cls.__name__} cannot be instantiated.")

    @classmethod
    def all(cls) -> tuple[str, str, str, str]:
        return (cls.SETUP, cls.SHARE_KEYS, cls.COLLECT_MASKED_VECTORS, cls.UNMASK)

    @classmethod
    def every(cls) -> tuple[str, ...]:
        """All six stages, in the order of a malicious-mode round."""
        return (cls.IDENTIFY, cls.SETUP, cls.SHARE_KEYS, cls.COLLECT_MASKED_VECTORS, cls.CONSISTENCY_CHECK, cls.UNMASK)


class Key:
    """Keys of the ``ConfigRecord`` under :data:`RECORD_KEY_CONFIGS` (and of the node's state record)."""

    STAGE = "stage"
    SESSION = "session"  # SHA-256 digest of the round's SecAggConfig: binds every message to one round
    MESSAGE = "message"  # one canonical fedprivacy secure-aggregation message (bytes)
    CONFIG = "config"  # setup only: the encoded SecAggConfig
    PARTY_ID = "party_id"  # setup only: the recipient's party id in the config
    CLIPPING_RANGE = "clipping_range"  # setup only: the quantizer's parameters
    MAX_WEIGHT = "max_weight"
    SCALE = "scale"
    DDP_L2_CLIP = "ddp_l2_clip"  # setup, optional: distributed DP (protocols/ddp/spec.md) -- all three or none
    DDP_NOISE_MULTIPLIER = "ddp_noise_multiplier"
    DDP_SENSITIVITY = "ddp_sensitivity"
    CLIENT = "client"  # state only: SecAggClient.snapshot()
    LAST_REQUEST = "last_request"  # state only: fingerprint of the last request answered
    LAST_REPLY = "last_reply"  # state only: the protocol message sent in answer

    def __new__(cls) -> Self:
        raise TypeError(f"{cls.__name__} cannot be instantiated.")
