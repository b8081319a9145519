"""The top-level parser: one sub-command per verb, each registered by its own module.

Usage errors are printed as ``fedprivacy: error: ...`` (exit status 2); every option's help shows its
default (see :class:`HelpFormatter`).
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import NoReturn

from .. import __version__

DESCRIPTION = """Privacy protocols for federated submodel learning: simulate a run, benchmark the protocols,
compute the epsilons of randomized-response parameters, audit privacy ledgers, write identities for
malicious mode. --json puts one JSON
object on stdout; progress and messages go to stderr."""


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help unless the help already names its default or
    there is none to show (a flag, or a default worked out from other options, which the help states)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default is None or default is False or default is argparse.SUPPRESS \
                or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse with the project's error convention: one line, ``fedprivacy: error: ...``, exit 2."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        message = re.sub(r"^argument ([^:]+): ", r"\1 ", message)
        print(f"fedprivacy: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    from . import audit, bench, identities, privacy, simulate

    parser = Parser(prog="fedprivacy", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"fedprivacy {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=Parser)
    for verb in (simulate, bench, privacy, audit, identities):
        verb.register(commands)
    return parser
