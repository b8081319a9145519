"""``fedprivacy audit``: verify and summarise the privacy ledgers in a directory."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _audit(args: argparse.Namespace) -> int:
    from ..accounting import LedgerIntegrityError, replay
    from ..accounting.report import client_report, population_report
    from ..adapters.storage import read_ledger_file
    from ..errors import FedPrivacyError

    root = Path(args.ledger_dir)
    if not root.is_dir():
        print(f"fedprivacy: error: {root} is not a directory", file=sys.stderr)
        return 2
    clients, broken = [], []
    files = sorted(root.rglob("*.jsonl"))
    for path in files:
        print(f"auditing {path}", file=sys.stderr)
        try:
            ledger = read_ledger_file(path)
            clients.append(client_report(str(path), replay(ledger)))
        except LedgerIntegrityError as exc:
            broken.append(exc)
        except (FedPrivacyError, OSError) as exc:
            broken.append(LedgerIntegrityError(str(path), 0, f"cannot be audited: {exc}"))
    report = population_report(clients, broken)
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        for error in broken:
            print(f"BROKEN {error.source}:{error.line}: {error.reason}")
        for client in clients:
            flag = " DISAGREEMENT" if client["disagreement"] else ""
            print(
                f"{client['client_id']}: spent {client['spent']} of {client['cap']} (remaining {client['remaining']}, "
                f"rounds until exhaustion {client['rounds_until_exhaustion']}, {client['releases']} releases){flag}"
            )
        print(f"population: {len(clients)} clients, spent {report['spent']}, {report['over_cap']} over cap")
    return 1 if broken or report["disagreements"] or report["over_cap"] else 0


def register(commands) -> None:
    audit = commands.add_parser(
        "audit",
        help="verify and summarise the privacy ledgers in a directory "
        "(exit 1 on a broken ledger, an accountant disagreement, or a client over its cap)",
    )
    audit.add_argument("ledger_dir", metavar="LEDGER_DIR",
                       help="a directory searched for ledgers (*.jsonl), such as a simulate --out folder")
    audit.add_argument("--json", action="store_true", help="the report as one JSON object on stdout")
    audit.set_defaults(run=_audit)
