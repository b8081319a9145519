"""Stages of the client and server state machines and the one table of allowed transitions.

Everything that moves a party from one stage to another is listed here, as data; the client and
server consult these tables and nothing else. A lookup miss means the event is not allowed in the
current stage: a local call raises :class:`LocalProtocolError` and changes nothing; a message from
the other side is a :class:`RemoteProtocolError` for a client (which aborts), and is counted and
ignored by the server (a client cannot break the server's round by sending junk).

``ABORTED`` and ``COMPLETED`` are sticky. A malicious-mode round (``SecAggConfig.malicious``) uses
``MALICIOUS_CLIENT_TRANSITIONS`` / ``MALICIOUS_SERVER_TRANSITIONS``: the consistency check sits between
the masked input and the unmasking, and an unmasking request before it is a protocol error.
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "SecAggStep",
    "ClientStage",
    "ServerStage",
    "STEP_OF_SERVER_STAGE",
    "ClientEvent",
    "ServerEvent",
    "CLIENT_TRANSITIONS",
    "SERVER_TRANSITIONS",
    "MALICIOUS_CLIENT_TRANSITIONS",
    "MALICIOUS_SERVER_TRANSITIONS",
]


class SecAggStep(Enum):
    """The four steps of a secure sum, named once: each is one message every surviving client sends.
    Drop schedules, the in-process driver and engine, and the Flower workflow's logs all use these
    names (the values are those of the secure-aggregation vectors' ``drops``). A client that *drops
    at* a step never sends that step's message: ``ADVERTISE`` (not in U1), ``SHARE`` (in U1 \\ U2),
    ``INPUT`` (in U2 \\ U3), ``UNMASK`` (in U3 \\ U5; in malicious mode it still signs the survivor
    set unless scheduled otherwise: the consistency check belongs to this step)."""

    ADVERTISE = "advertise"  # advertise keys (round 0)
    SHARE = "share"  # share keys (round 1)
    INPUT = "input"  # the masked input (round 2)
    UNMASK = "unmask"  # the consistency check (malicious mode) and the unmasking (round 3)

    @property
    def order(self) -> int:
        return _STEP_ORDER.index(self)


_STEP_ORDER = (SecAggStep.ADVERTISE, SecAggStep.SHARE, SecAggStep.INPUT, SecAggStep.UNMASK)


class ClientStage(Enum):
    CREATED = "created"
    KEYS_ADVERTISED = "keys-advertised"  # round 0 sent, waiting for the neighbours' keys
    SHARES_SENT = "shares-sent"  # round 1 sent, waiting for the shares routed to it
    AWAITING_INPUT = "awaiting-input"  # shares received; masks as soon as the input is submitted
    INPUT_SENT = "input-sent"  # round 2 sent, waiting for the unmasking request
    SIGNED = "signed"  # malicious mode: signed the survivor set, waiting for the unmasking request
    COMPLETED = "completed"  # round 3 answered (an identical repeated request gets the same answer)
    ABORTED = "aborted"


class ClientEvent(Enum):
    START = "start"
    KEY_BROADCAST = "key-broadcast"
    ROUTED_SHARES = "routed-shares"
    SUBMIT_INPUT = "submit-input"
    UNMASK_REQUEST = "unmask-request"
    CONSISTENCY_REQUEST = "consistency-request"


class ServerStage(Enum):
    COLLECTING_KEYS = "collecting-keys"  # U1
    COLLECTING_SHARES = "collecting-shares"  # U2
    COLLECTING_INPUTS = "collecting-inputs"  # U3
    COLLECTING_SIGNATURES = "collecting-signatures"  # U4 (malicious mode)
    COLLECTING_UNMASKING = "collecting-unmasking"  # U5
    COMPLETED = "completed"
    ABORTED = "aborted"


STEP_OF_SERVER_STAGE: dict[ServerStage, SecAggStep] = {
    ServerStage.COLLECTING_KEYS: SecAggStep.ADVERTISE,
    ServerStage.COLLECTING_SHARES: SecAggStep.SHARE,
    ServerStage.COLLECTING_INPUTS: SecAggStep.INPUT,
    ServerStage.COLLECTING_SIGNATURES: SecAggStep.UNMASK,
    ServerStage.COLLECTING_UNMASKING: SecAggStep.UNMASK,
}
"""The step whose messages a server stage collects."""


class ServerEvent(Enum):
    ADVERTISE_KEYS = "advertise-keys"
    SHARE_KEYS = "share-keys"
    MASKED_INPUT = "masked-input"
    UNMASK_RESPONSE = "unmask-response"
    CONSISTENCY_RESPONSE = "consistency-response"
    CLOSE_STAGE = "close-stage"


C, CE = ClientStage, ClientEvent
CLIENT_TRANSITIONS: dict[tuple[ClientStage, ClientEvent], ClientStage] = {
    (C.CREATED, CE.START): C.KEYS_ADVERTISED,
    (C.KEYS_ADVERTISED, CE.KEY_BROADCAST): C.SHARES_SENT,
    (C.SHARES_SENT, CE.ROUTED_SHARES): C.AWAITING_INPUT,  # -> INPUT_SENT at once if input was submitted
    # The input may be submitted early; it is kept (copied) and masked once the shares arrive.
    (C.CREATED, CE.SUBMIT_INPUT): C.CREATED,
    (C.KEYS_ADVERTISED, CE.SUBMIT_INPUT): C.KEYS_ADVERTISED,
    (C.SHARES_SENT, CE.SUBMIT_INPUT): C.SHARES_SENT,
    (C.AWAITING_INPUT, CE.SUBMIT_INPUT): C.INPUT_SENT,
    (C.INPUT_SENT, CE.UNMASK_REQUEST): C.COMPLETED,
    (C.COMPLETED, CE.UNMASK_REQUEST): C.COMPLETED,  # only an identical repeat is answered
}

S, SE = ServerStage, ServerEvent
SERVER_TRANSITIONS: dict[tuple[ServerStage, ServerEvent], ServerStage] = {
    (S.COLLECTING_KEYS, SE.ADVERTISE_KEYS): S.COLLECTING_KEYS,
    (S.COLLECTING_KEYS, SE.CLOSE_STAGE): S.COLLECTING_SHARES,
    (S.COLLECTING_SHARES, SE.SHARE_KEYS): S.COLLECTING_SHARES,
    (S.COLLECTING_SHARES, SE.CLOSE_STAGE): S.COLLECTING_INPUTS,
    (S.COLLECTING_INPUTS, SE.MASKED_INPUT): S.COLLECTING_INPUTS,
    (S.COLLECTING_INPUTS, SE.CLOSE_STAGE): S.COLLECTING_UNMASKING,
    (S.COLLECTING_UNMASKING, SE.UNMASK_RESPONSE): S.COLLECTING_UNMASKING,
    (S.COLLECTING_UNMASKING, SE.CLOSE_STAGE): S.COMPLETED,
}
MALICIOUS_CLIENT_TRANSITIONS: dict[tuple[ClientStage, ClientEvent], ClientStage] = {
    **{key: value for key, value in CLIENT_TRANSITIONS.items() if key != (C.INPUT_SENT, CE.UNMASK_REQUEST)},
    (C.INPUT_SENT, CE.CONSISTENCY_REQUEST): C.SIGNED,
    (C.SIGNED, CE.CONSISTENCY_REQUEST): C.SIGNED,  # only an identical repeat is answered
    (C.SIGNED, CE.UNMASK_REQUEST): C.COMPLETED,
}
MALICIOUS_SERVER_TRANSITIONS: dict[tuple[ServerStage, ServerEvent], ServerStage] = {
    **SERVER_TRANSITIONS,
    (S.COLLECTING_INPUTS, SE.CLOSE_STAGE): S.COLLECTING_SIGNATURES,
    (S.COLLECTING_SIGNATURES, SE.CONSISTENCY_RESPONSE): S.COLLECTING_SIGNATURES,
    (S.COLLECTING_SIGNATURES, SE.CLOSE_STAGE): S.COLLECTING_UNMASKING,
}
del C, CE, S, SE
