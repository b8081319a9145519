"""The top-level parser: one sub-command per verb, each registered by its own module."""

from __future__ import annotations

import argparse

from . import audit, bench, privacy, simulate

DESCRIPTION = """Command line: ``fedprivacy simulate | bench | privacy | audit``. ``--json`` puts one JSON object on stdout;
progress goes to stderr."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fedprivacy", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    for verb in (simulate, bench, privacy, audit):
        verb.register(commands)
    return parser
