"""Identity keys and trust stores on disk (JSON), for the CLI and the Flower node config.

Formats (canonical JSON, UTF-8; the spec is ``protocols/secagg/spec.md`` §14.1):

* trust store: ``{"version": 1, "keys": {"<party id>": "<64 hex digits: Ed25519 public key>", ...}}``
* identity:    ``{"version": 1, "party_id": <int>, "signing_key": "<64 hex digits: Ed25519 private key>"}``

The identity file holds a secret: it is written with mode 0600 and belongs on the party's device
only. Who may change the trust store decides who can take part: keep it out of the server's reach.
Reading either file raises :class:`~fedprivacy.errors.InvalidParameters` for anything malformed.

Flower: the node config keys :data:`IDENTITY_KEY` and :data:`TRUST_STORE_KEY` name the two files;
with both set the node's secure sums require malicious mode (a node with only one is refused).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import InvalidParameters
from ..secagg.identity import Identity, TrustStore

__all__ = [
    "IDENTITY_KEY",
    "TRUST_STORE_KEY",
    "load_identity",
    "load_trust_store",
    "save_identity",
    "save_trust_store",
    "identity_from_config",
]

IDENTITY_KEY = "fedprivacy-identity-key"  # node config: path of this node's identity file
TRUST_STORE_KEY = "fedprivacy-trust-store"  # node config: path of the deployment's trust store
_VERSION = 1
_MAX_FILE_BYTES = 64 << 20


def _read_json(path: str | os.PathLike[str], what: str) -> dict:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidParameters(f"cannot read the {what} {os.fspath(path)!r}: {exc.strerror}") from None
    if len(raw) > _MAX_FILE_BYTES:
        raise InvalidParameters(f"the {what} is larger than {_MAX_FILE_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidParameters(f"the {what} is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != _VERSION:
        raise InvalidParameters(f"the {what} is not a version-{_VERSION} fedprivacy file")
    return data


def _hex32(value: object, what: str) -> bytes:
    if not isinstance(value, str) or len(value) != 64:
        raise InvalidParameters(f"{what} must be 64 hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise InvalidParameters(f"{what} must be 64 hex digits") from None


def _party(value: object, what: str) -> int:
    if isinstance(value, str) and value.isdigit() and value == str(int(value)):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidParameters(f"{what} must be a party id (an integer)")
    return value


def load_trust_store(path: str | os.PathLike[str]) -> TrustStore:
    data = _read_json(path, "trust store")
    keys = data.get("keys")
    if not isinstance(keys, dict) or set(data) != {"version", "keys"}:
        raise InvalidParameters('a trust store is {"version": 1, "keys": {"<party id>": "<hex key>"}}')
    return TrustStore({_party(p, "a trust store id"): _hex32(k, f"party {p}'s key") for p, k in keys.items()})


def load_identity(path: str | os.PathLike[str]) -> Identity:
    data = _read_json(path, "identity file")
    if set(data) != {"version", "party_id", "signing_key"}:
        raise InvalidParameters('an identity file is {"version": 1, "party_id": <id>, "signing_key": "<hex>"}')
    return Identity(_party(data["party_id"], "party_id"), _hex32(data["signing_key"], "signing_key"))


def _write(path: str | os.PathLike[str], data: dict, mode: int) -> None:
    text = json.dumps(data, sort_keys=True, indent=1) + "\n"
    target = Path(path)
    temporary = target.with_name(target.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)


def save_trust_store(path: str | os.PathLike[str], store: TrustStore) -> None:
    _write(path, {"version": _VERSION, "keys": {str(p): store[p].hex() for p in store}}, 0o644)


def save_identity(path: str | os.PathLike[str], identity: Identity) -> None:
    _write(path, {"version": _VERSION, "party_id": identity.party_id, "signing_key": identity.signing_key.hex()}, 0o600)


def identity_from_config(node_config: Mapping[str, object]) -> tuple[Identity | None, TrustStore | None]:
    """The node's identity and trust store from the paths in its node config (both keys, or neither)."""
    has_identity, has_trust = IDENTITY_KEY in node_config, TRUST_STORE_KEY in node_config
    if not has_identity and not has_trust:
        return None, None
    if has_identity != has_trust:
        raise InvalidParameters(f"set both {IDENTITY_KEY} and {TRUST_STORE_KEY} in the node config, or neither")
    identity = load_identity(str(node_config[IDENTITY_KEY]))
    trust = load_trust_store(str(node_config[TRUST_STORE_KEY]))
    if trust.get(identity.party_id) != identity.verify_key:
        raise InvalidParameters("the trust store does not name this node's identity key")
    return identity, trust
