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


# Only the outer ring talks to the outside world: files, Flower, Ray, data sets (``adapters``) and
# the command line (``cli``). The protocol cores below it never import it. The one exception is the
# Flower comparison bench, a harness that is to leave the installed package; it may not grow.
_OUTER = ("fedprivacy.adapters", "fedprivacy.cli")
_TOOLS_ON_THE_ADAPTERS = {("fedprivacy.bench.flower", "fedprivacy.adapters.flower.comparison")}


def test_only_the_outer_ring_imports_the_adapters():
    offenders = [
        f"{name} imports {module}"
        for name, tree in MODULES.items()
        if not any(_in(name, outer) for outer in _OUTER)
        for module, _ in _imports(name, tree)
        if _in(module, "fedprivacy.adapters") and (name, module) not in _TOOLS_ON_THE_ADAPTERS
    ]
    assert offenders == []


# A subpackage's rank: a module may import only subpackages of its own or a lower rank. The cores
# (``submodel`` composes the protocols below it) never reach up to a driver or a bench. ``policy``
# (the client's limits over every protocol) shares the protocols' rank: it and ``secagg``/``psu``
# still import each other.
_RANK = {
    "fedprivacy.errors": 0, "fedprivacy.hazmat": 1, "fedprivacy.encoding": 2, "fedprivacy.gapcode": 2, "fedprivacy.loopback": 2,
    "fedprivacy.accounting": 3, "fedprivacy.ldp": 3, "fedprivacy.ddp": 3, "fedprivacy.psu": 3,
    "fedprivacy.secagg": 3, "fedprivacy.policy": 3, "fedprivacy.submodel": 5,
    "fedprivacy.adapters": 6, "fedprivacy.bench": 7, "fedprivacy.cli": 8, "fedprivacy.__main__": 9,
}


def _rank(module: str) -> int | None:
    return next((rank for package, rank in _RANK.items() if _in(module, package)), None)


def test_every_module_has_a_rank():
    assert [name for name in MODULES if name != "fedprivacy" and _rank(name) is None] == []


def test_no_subpackage_imports_upward():
    offenders = [
        f"{name} imports {module}"
        for name, tree in MODULES.items()
        if name != "fedprivacy"
        for module, _ in _imports(name, tree)
        if _in(module, "fedprivacy") and module != "fedprivacy"
        and (_rank(module) or 0) > (_rank(name) or 0)
    ]
    assert offenders == []


def test_the_submodel_protocol_does_no_file_io():
    """The round's parties get their store injected; opening files is the file adapter's business."""
    offenders = [
        f"{name} imports {module}"
        for name, tree in MODULES.items()
        if _in(name, "fedprivacy.submodel")
        for module, _ in _imports(name, tree)
        if module.split(".")[0] in {"tempfile", "shutil", "pathlib", "fcntl"}
    ]
    assert offenders == []
