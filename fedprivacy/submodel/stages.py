"""Stages of the secure submodel round's client and server, and the one table of allowed moves.

Each entry maps (stage, event) to the stages the handler may move to; a lookup miss means the event
is not allowed now. For the client, a server message out of turn is a :class:`RemoteProtocolError`
(the client aborts and sends nothing more); a local call out of turn is a
:class:`LocalProtocolError` and changes nothing. The server never raises on a client's message: it
records it as ignored. ``COMPLETED``, ``SAT_OUT`` and ``ABORTED`` are terminal.
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "RoundClientStage",
    "RoundClientEvent",
    "RoundServerStage",
    "RoundServerEvent",
    "ROUND_CLIENT_TRANSITIONS",
    "ROUND_SERVER_TRANSITIONS",
]


class RoundClientStage(Enum):
    CREATED = "created"
    SKETCH_SENT = "sketch-sent"  # in the PSU's secure sum (possibly a later attempt); the rows' sum set up alongside
    REPORT_SENT = "report-sent"  # S''_i sent (ledger line and memo kept first); waiting for its rows
    UPLOADING = "uploading"  # in the rows' secure sum
    COMPLETED = "completed"  # answered the rows' unmasking request
    SAT_OUT = "sat-out"  # over the set-size cap, or refused by its budget filter (SitOut sent)
    ABORTED = "aborted"


class RoundClientEvent(Enum):
    ROUND_START = "round-start"
    PSU_MESSAGE = "psu-message"
    UNION = "union"
    DOWNLOAD = "download"
    ROWS_MESSAGE = "rows-message"


class RoundServerStage(Enum):
    CREATED = "created"
    PSU = "psu"  # running the PSU's secure sum (attempt after attempt if the table was too small)
    COLLECTING_REPORTS = "collecting-reports"  # union sent; collecting S''_i
    AGGREGATING = "aggregating"  # plans and rows sent; running the rows' secure sum
    COMPLETED = "completed"  # the averages were applied to the model
    ABORTED = "aborted"


class RoundServerEvent(Enum):
    START = "start"
    PSU_MESSAGE = "psu-message"
    REPORT = "report"
    SIT_OUT = "sit-out"
    ROWS_MESSAGE = "rows-message"
    CLOSE_STAGE = "close-stage"


C, CE = RoundClientStage, RoundClientEvent
ROUND_CLIENT_TRANSITIONS: dict[tuple[RoundClientStage, RoundClientEvent], frozenset[RoundClientStage]] = {
    (C.CREATED, CE.ROUND_START): frozenset({C.SKETCH_SENT}),
    (C.SKETCH_SENT, CE.ROUND_START): frozenset({C.SKETCH_SENT}),  # a later PSU attempt
    (C.SKETCH_SENT, CE.PSU_MESSAGE): frozenset({C.SKETCH_SENT}),
    (C.SKETCH_SENT, CE.ROWS_MESSAGE): frozenset({C.SKETCH_SENT}),  # the rows' keys and shares, with the PSU's
    (C.SKETCH_SENT, CE.UNION): frozenset({C.REPORT_SENT, C.SAT_OUT}),
    (C.REPORT_SENT, CE.DOWNLOAD): frozenset({C.UPLOADING, C.SAT_OUT}),  # SAT_OUT: refused by its update budget
    (C.UPLOADING, CE.ROWS_MESSAGE): frozenset({C.UPLOADING, C.COMPLETED}),
    (C.COMPLETED, CE.ROWS_MESSAGE): frozenset({C.COMPLETED}),  # an identical repeated unmasking request
}

S, SE = RoundServerStage, RoundServerEvent
ROUND_SERVER_TRANSITIONS: dict[tuple[RoundServerStage, RoundServerEvent], frozenset[RoundServerStage]] = {
    (S.CREATED, SE.START): frozenset({S.PSU}),
    (S.PSU, SE.PSU_MESSAGE): frozenset({S.PSU}),
    (S.PSU, SE.ROWS_MESSAGE): frozenset({S.PSU}),  # the rows' keys and shares, with the PSU's first attempt
    (S.PSU, SE.SIT_OUT): frozenset({S.PSU}),
    (S.PSU, SE.CLOSE_STAGE): frozenset({S.PSU, S.COLLECTING_REPORTS}),  # a secure-sum stage, a retry, or the union
    (S.COLLECTING_REPORTS, SE.REPORT): frozenset({S.COLLECTING_REPORTS}),
    (S.COLLECTING_REPORTS, SE.SIT_OUT): frozenset({S.COLLECTING_REPORTS}),
    (S.COLLECTING_REPORTS, SE.CLOSE_STAGE): frozenset({S.AGGREGATING}),
    (S.AGGREGATING, SE.ROWS_MESSAGE): frozenset({S.AGGREGATING}),
    (S.AGGREGATING, SE.CLOSE_STAGE): frozenset({S.AGGREGATING, S.COMPLETED}),
}
del C, CE, S, SE
