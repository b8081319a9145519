"""The command line: ``fedprivacy simulate | bench | privacy | audit`` (also ``python -m fedprivacy``).

One module per verb (:mod:`.simulate`, :mod:`.bench`, :mod:`.privacy`, :mod:`.audit`), each adding its
own sub-command to the parser (:mod:`.parser`); :mod:`.output`, :mod:`.progress` and :mod:`.plots`
print results, the progress line and the report's plots. ``--json`` puts one JSON object on stdout;
progress goes to stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..errors import FedPrivacyError
from .parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except FedPrivacyError as exc:
        print(f"fedprivacy: error: {exc}", file=sys.stderr)
        return 2
