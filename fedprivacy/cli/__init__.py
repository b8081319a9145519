"""The command line: ``fedprivacy simulate | bench | privacy | audit`` (also ``python -m fedprivacy``).

One module per verb (:mod:`.simulate`, :mod:`.bench`, :mod:`.privacy`, :mod:`.audit`), each adding its
own sub-command to the parser (:mod:`.parser`) and checking its arguments up front (:mod:`.checks`);
:mod:`.output`, :mod:`.progress` and :mod:`.plots` print results, the progress line and the report's
plots; :mod:`.interrupt` makes Ctrl-C stop at a safe point. ``--json`` puts one JSON object on stdout;
progress goes to stderr.

Exit status: 0 done; 1 a check failed (a benchmark's result differs from plaintext, an audit found a
problem) or the run failed (an I/O error, a round aborted); 2 a bad argument; 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..errors import FedPrivacyError, RoundAborted
from . import interrupt
from .parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    interrupt.note("nothing was written")
    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args))
    except KeyboardInterrupt:
        interrupt.forget_unhandled()
        print(f"fedprivacy: interrupted: {interrupt.current_note()}", file=sys.stderr)
        return 130
    except RoundAborted as exc:
        print(f"fedprivacy: error: {exc}", file=sys.stderr)
        return 1
    except FedPrivacyError as exc:
        print(f"fedprivacy: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:
        print("fedprivacy: error: out of memory; choose smaller sizes", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (``| head``): nothing more to say
        sys.stderr.close()
        return 1
    except OSError as exc:
        print(f"fedprivacy: error: {exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}", file=sys.stderr)
        return 1
