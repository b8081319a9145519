"""``fedprivacy identities``: identity files and the trust store for a malicious-mode deployment.

Writes, for every party id asked for, ``identity-<id>.json`` (a fresh Ed25519 signing key from the OS
CSPRNG, mode 0600: it belongs on that party's device only) and one ``trust-store.json`` naming every
party's public key (formats: :mod:`fedprivacy.adapters.identity`; protocol: ``protocols/secagg/spec.md``
§14). A Flower node takes its two paths in the node config keys ``fedprivacy-identity-key`` and
``fedprivacy-trust-store``; the server takes the trust store (the run config key
``fedprivacy-trust-store``, or the workflows' ``trust_store`` argument). Existing files are never
overwritten. Generating every key in one place is for trials and simulations; a deployment generates
each key on its device and collects only the public halves.
"""

from __future__ import annotations

import argparse
import os

from .checks import UsageError, party_ranges, writable_out_dir
from .output import _emit

TRUST_STORE_FILE = "trust-store.json"


def identity_file(party: int) -> str:
    return f"identity-{party}.json"


def _identities(args: argparse.Namespace) -> int:
    from ..adapters.identity import save_identity, save_trust_store
    from ..secagg import make_identities

    out = writable_out_dir("--out", args.out)
    targets = [out / identity_file(p) for p in args.parties] + [out / TRUST_STORE_FILE]
    existing = [str(path) for path in targets if path.exists()]
    if existing:
        raise UsageError(f"--out {args.out}: {len(existing)} of the files exist already (first: {existing[0]}); "
                         "identity keys are never overwritten: choose an empty directory")
    identities, trust = make_identities(args.parties)  # OS CSPRNG
    for party, identity in identities.items():
        save_identity(out / identity_file(party), identity)
    save_trust_store(out / TRUST_STORE_FILE, trust)  # written last: a complete store names written keys only
    first = args.parties[0]
    _emit({
        "parties": len(args.parties),
        "first_party": first,
        "last_party": args.parties[-1],
        "trust_store": os.fspath(out / TRUST_STORE_FILE),
        "identity_files": os.fspath(out / "identity-<id>.json"),
        "node_config_example": f'fedprivacy-identity-key="{out / identity_file(first)}" '
                               f'fedprivacy-trust-store="{out / TRUST_STORE_FILE}"',
    }, args.json)
    return 0


def register(commands) -> None:
    identities = commands.add_parser(
        "identities",
        help="write identity files (Ed25519 signing keys) and the trust store for a malicious-mode deployment",
    )
    identities.add_argument("--parties", type=party_ranges(), required=True,
                            help="the party ids, as ranges: 1-10,12,20-25")
    identities.add_argument("--out", required=True, metavar="DIR",
                            help="directory for identity-<id>.json (mode 0600) and trust-store.json; "
                            "existing files are never overwritten")
    identities.add_argument("--json", action="store_true", help="the summary as one JSON object on stdout")
    identities.set_defaults(run=_identities)
