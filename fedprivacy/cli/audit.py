"""``fedprivacy audit``: verify and summarise the privacy ledgers in a directory."""

from __future__ import annotations

import argparse
import json


def _audit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..adapters.audit import audit_directory, render_text
    from .checks import check

    check(Path(args.ledger_dir).is_dir(), f"LEDGER_DIR {args.ledger_dir} is not a directory")

    result = audit_directory(args.ledger_dir)  # reads only; every problem as a finding with file and line
    if args.json:
        print(json.dumps(result.to_json(), sort_keys=True, allow_nan=False))
    else:
        print(render_text(result))
    return 0 if result.ok else 1


def register(commands) -> None:
    audit = commands.add_parser(
        "audit",
        help="verify and summarise the privacy ledgers and memos in a directory: every problem with its file and line "
        "(exit 1 on a broken, cut or missing ledger, a damaged or rolled-back memo, an accountant disagreement, "
        "or a client over its cap)",
    )
    audit.add_argument("ledger_dir", metavar="LEDGER_DIR",
                       help="a directory searched for ledgers (*.jsonl), such as a simulate --out folder")
    audit.add_argument("--json", action="store_true", help="the report as one JSON object on stdout")
    audit.set_defaults(run=_audit)
