"""The threat model has one source, the specs: a module docstring that speaks of it links a spec
section that exists instead of restating it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import fedprivacy

PACKAGE = Path(fedprivacy.__file__).parent
ROOT = PACKAGE.parent
_MENTIONS = re.compile(r"threat model|what the server (?:learns|sees)", re.IGNORECASE)
_SPEC = re.compile(r"``(protocols/[a-z]+/spec\.md)``((?:[^`]{0,4}(?:§\d+|\"[^\"]+\")(?:\s*(?:and|,)\s*§\d+)*)*)")


def _docstrings() -> dict[str, str]:
    docs = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        if doc:
            docs[str(path.relative_to(ROOT))] = " ".join(doc.split())
    return docs


def _headings(spec: Path) -> list[str]:
    return [line.lstrip("#").strip() for line in spec.read_text(encoding="utf-8").splitlines() if line.startswith("#")]


def _titles(headings: list[str]) -> set[str]:
    """Each heading with and without its section number ("13. Client policy" and "Client policy")."""
    return set(headings) | {re.sub(r"^[\d.]+\s+", "", h) for h in headings}


def test_a_docstring_about_the_threat_model_links_its_spec():
    unlinked = [name for name, doc in _docstrings().items() if _MENTIONS.search(doc) and not _SPEC.search(doc)]
    assert unlinked == []


def test_every_linked_spec_section_exists():
    missing = []
    for name, doc in _docstrings().items():
        for match in _SPEC.finditer(doc):
            spec = ROOT / match.group(1)
            if not spec.is_file():
                missing.append(f"{name}: {match.group(1)}")
                continue
            headings = _headings(spec)
            for number in re.findall(r"§(\d+)", match.group(2)):
                if not any(h.startswith(f"{number}.") or h.startswith(f"{number} ") for h in headings):
                    missing.append(f"{name}: {match.group(1)} §{number}")
            for title in re.findall(r"\"([^\"]+)\"", match.group(2)):
                if not any(t == title or t.startswith(title + " (") for t in _titles(headings)):
                    missing.append(f"{name}: {match.group(1)} \"{title}\"")
    assert missing == []
