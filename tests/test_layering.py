"""The package's import graph: primitives stay closed inside ``fedprivacy/hazmat/``.

Read from the source (every ``import`` statement, function-level ones included), so a lazy import
inside a function counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import fedprivacy

PACKAGE = Path(fedprivacy.__file__).parent
# The libraries that implement primitives: only hazmat may call them.
PRIMITIVE_LIBRARIES = {"cryptography", "Crypto", "nacl"}


def _modules() -> dict[str, ast.Module]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ("fedprivacy", *path.relative_to(PACKAGE).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return modules


def _imports(name: str, tree: ast.Module) -> list[tuple[str, str | None]]:
    """(imported module, imported name or None) for every import statement in the module."""
    is_package = name in _PACKAGES
    package = name if is_package else name.rpartition(".")[0]
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.extend((module, alias.name) for alias in node.names)
    return found


_PACKAGES = {
    ".".join(("fedprivacy", *path.relative_to(PACKAGE).parent.parts)) for path in PACKAGE.rglob("__init__.py")
}
MODULES = _modules()


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_walk_sees_the_package():
    assert "fedprivacy.hazmat.prf" in MODULES and "fedprivacy.secagg.rows" in MODULES
    assert ("cryptography.hazmat.primitives.ciphers", "Cipher") in _imports(
        "fedprivacy.hazmat.prf", MODULES["fedprivacy.hazmat.prf"]
    )


def test_only_hazmat_imports_a_primitive_library():
    offenders = [
        f"{name} imports {module}"
        for name, tree in MODULES.items()
        if not _in(name, "fedprivacy.hazmat")
        for module, _ in _imports(name, tree)
        if module.split(".")[0] in PRIMITIVE_LIBRARIES
    ]
    assert offenders == []


def test_hazmat_imports_nothing_above_it():
    """hazmat holds no protocol state: inside the package it uses only itself and the error tree."""
    offenders = [
        f"{name} imports {module}"
        for name, tree in MODULES.items()
        if _in(name, "fedprivacy.hazmat")
        for module, _ in _imports(name, tree)
        if _in(module, "fedprivacy") and not (_in(module, "fedprivacy.hazmat") or module == "fedprivacy.errors")
    ]
    assert offenders == []


# The CLI's modules still share private functions among themselves; nowhere else may a module reach
# into another module's private names.
_PRIVATE_IMPORTS_ALLOWED_WITHIN = ("fedprivacy.cli",)


def test_no_private_name_is_imported_from_another_module():
    offenders = [
        f"{name} imports {module}.{imported}"
        for name, tree in MODULES.items()
        for module, imported in _imports(name, tree)
        if imported is not None
        and imported.startswith("_")
        and not imported.startswith("__")
        and _in(module, "fedprivacy")
        and not any(_in(name, allowed) and _in(module, allowed) for allowed in _PRIVATE_IMPORTS_ALLOWED_WITHIN)
    ]
    assert offenders == []
