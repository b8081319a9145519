"""The whole exception tree of fedprivacy.

Every error the library raises on purpose derives from :class:`FedPrivacyError`, so callers can catch
the library's failures without catching programming errors. The split follows h11 and
pyca/cryptography:

* :class:`InvalidParameters` -- the caller asked for something that cannot be secure or correct
  (raised before any state changes or any message leaves).
* :class:`LocalProtocolError` -- the caller drove a party out of order (a bug in the caller's driver).
* :class:`RemoteProtocolError` -- a peer (or the server) sent something the protocol forbids.
  The party that detects it aborts and releases nothing more. :class:`PolicyViolation` is the case
  where the request is well formed but asks for less privacy than the client's own policy allows.
* :class:`RoundAborted` -- the round cannot complete (too few survivors, unrecoverable secret);
  nothing about the inputs is released. :class:`WorkerFailed` is the case where the cause is local:
  the worker processes a caller gave a party (the server's unmasking) failed.
* :class:`InvalidCiphertext` -- opaque: authentication failed; it never says why.
* :class:`DecodeError` -- bytes that are not a canonical encoding of a message. Decoding untrusted
  bytes raises this and nothing else.
* :class:`BudgetExceeded` -- a privacy budget filter refused a release.
"""

from __future__ import annotations

__all__ = [
    "FedPrivacyError",
    "InvalidParameters",
    "ProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "PolicyViolation",
    "RoundAborted",
    "WorkerFailed",
    "InvalidCiphertext",
    "DecodeError",
    "BudgetExceeded",
]


class FedPrivacyError(Exception):
    """Root of every error fedprivacy raises on purpose."""


class InvalidParameters(FedPrivacyError, ValueError):
    """Parameters that are out of range, inconsistent, or could not be secure or correct."""


class ProtocolError(FedPrivacyError):
    """A protocol rule was broken. Abstract: raise one of the two subclasses."""

    def __init__(self, *args: object) -> None:
        if type(self) is ProtocolError:
            raise TypeError("ProtocolError is abstract; raise LocalProtocolError or RemoteProtocolError")
        super().__init__(*args)


class LocalProtocolError(ProtocolError):
    """The local caller drove a party in a way the protocol does not allow (wrong stage, bad input)."""


class RemoteProtocolError(ProtocolError):
    """A peer or the server sent a message the protocol forbids; the receiving party aborted."""


class PolicyViolation(RemoteProtocolError):
    """A server (or run-config) request outside the client's :class:`~fedprivacy.policy.ClientPolicy`.

    The client aborts that round and sends nothing more; ``knob`` names the policy field that refused.
    """

    def __init__(self, knob: str, detail: str) -> None:
        super().__init__(f"refused by the client policy ({knob}): {detail}")
        self.knob = knob
        self.detail = detail


class RoundAborted(FedPrivacyError):
    """The round stopped without output. ``stage`` names where; ``detail`` says why (counts only)."""

    def __init__(self, stage: str, detail: str) -> None:
        super().__init__(f"round aborted at {stage}: {detail}")
        self.stage = stage
        self.detail = detail


class WorkerFailed(RoundAborted):
    """The workers a caller handed to a party failed (one raised, died, or returned something malformed):
    the party aborted at ``stage`` without output -- never with a partial or wrong one. The worker's
    own exception, when there is one, is the ``__cause__``."""


class InvalidCiphertext(FedPrivacyError):
    """Authenticated decryption failed. Deliberately opaque: wrong key, nonce, data or tag alike."""

    def __init__(self) -> None:
        super().__init__("invalid ciphertext")


class DecodeError(FedPrivacyError):
    """Bytes are not the canonical encoding of a message of the expected type and version."""


class BudgetExceeded(FedPrivacyError):
    """A release would take a client's privacy spending past its cap; the client must not take part."""
