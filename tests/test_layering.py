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
# the command line (``cli``). The protocol cores below it never import it.
_OUTER = ("fedprivacy.adapters", "fedprivacy.cli")


def test_only_the_outer_ring_imports_the_adapters():
    offenders = [
        f"{name} imports {module}"
        for name, tree in MODULES.items()
        if not any(_in(name, outer) for outer in _OUTER)
        for module, _ in _imports(name, tree)
        if _in(module, "fedprivacy.adapters")
    ]
    assert offenders == []


# A subpackage's rank: a module may import only subpackages of its own or a lower rank. The cores
# (``submodel`` composes the protocols below it) never reach up to a driver or a bench. ``policy``
# (the client's limits over every protocol) sits above the protocols: each protocol owns and checks
# its own part of it (``secagg.policy``, ``psu.policy``, ``ddp.params.DDPPolicy``) and never imports it.
_RANK = {
    "fedprivacy.errors": 0, "fedprivacy.hazmat": 1, "fedprivacy.encoding": 2, "fedprivacy.gapcode": 2, "fedprivacy.loopback": 2,
    "fedprivacy.accounting": 3, "fedprivacy.ldp": 3, "fedprivacy.ddp": 3, "fedprivacy.psu": 3,
    "fedprivacy.secagg": 3, "fedprivacy.policy": 4, "fedprivacy.client_settings": 4, "fedprivacy.submodel": 5,
    "fedprivacy.adapters": 6, "fedprivacy.cli": 8, "fedprivacy.__main__": 9,
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


def _subpackage(module: str) -> str:
    """``fedprivacy.secagg.client`` -> ``fedprivacy.secagg``; a top-level module is its own node."""
    return ".".join(module.split(".")[:2])


def _subpackage_graph() -> dict[str, set[str]]:
    """Which subpackages (and top-level modules) each one imports, lazy imports included."""
    graph: dict[str, set[str]] = {}
    for name, tree in MODULES.items():
        if name == "fedprivacy":
            continue
        for module, imported in _imports(name, tree):
            if module == "fedprivacy" and imported is not None:
                module = f"fedprivacy.{imported}"  # ``from .. import policy``
            if not _in(module, "fedprivacy") or module == "fedprivacy":
                continue
            source, target = _subpackage(name), _subpackage(module)
            if source != target and target in _RANK:
                graph.setdefault(source, set()).add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of the graph as a path (first node repeated at the end), or [] if it has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_subpackage_import_graph_is_acyclic():
    """No two subpackages import each other, even through a third or a late import in a function."""
    graph = _subpackage_graph()
    assert "fedprivacy.policy" in graph["fedprivacy.submodel"]  # the walk sees the edges it judges
    assert _cycle(graph) == []


def test_the_protocols_never_import_the_client_policy():
    """The protocols take their own policy type (a ClientPolicy is one); the composed policy is above them."""
    offenders = [
        f"{name} imports {module}"
        for name, tree in MODULES.items()
        if any(_in(name, f"fedprivacy.{core}") for core in ("secagg", "psu", "ddp", "ldp", "accounting"))
        for module, imported in _imports(name, tree)
        if _in(module, "fedprivacy.policy") or (module == "fedprivacy" and imported == "policy")
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


# The tools live outside the library: the bench harnesses (``fedprivacy_bench``, beside the package)
# and the test and proof helpers (``tests``, ``proofs``). Nothing in the library imports them, except
# the command line's bench verb, and that only inside the functions that run a benchmark, so that
# importing the CLI (or anything else) never loads a harness.
_TOOLS = ("fedprivacy_bench", "tests", "proofs")
_BENCH_VERB = "fedprivacy.cli.bench"


def _tool_imports(tree: ast.Module) -> list[tuple[str, bool]]:
    """(imported tool module, whether the import runs only when a function is called)."""
    lazy = {
        id(node)
        for function in ast.walk(tree)
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(function)
        if isinstance(node, (ast.Import, ast.ImportFrom))
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:  # a relative import stays in the package
            modules = [node.module or ""]
        else:
            continue
        found.extend((module, id(node) in lazy) for module in modules if any(_in(module, tool) for tool in _TOOLS))
    return found


def test_the_tool_walk_tells_lazy_imports_from_eager_ones():
    tree = ast.parse("import fedprivacy_bench.ldp\ndef run():\n    from fedprivacy_bench.secagg import x\n"
                     "from tests.helpers import config\nfrom .secagg import y\n")
    assert _tool_imports(tree) == [
        ("fedprivacy_bench.ldp", False), ("tests.helpers", False), ("fedprivacy_bench.secagg", True),
    ]
    assert ("fedprivacy_bench.secagg", True) in _tool_imports(MODULES[_BENCH_VERB])


def test_the_library_imports_no_tool():
    offenders = [
        f"{name} imports {module}{' (lazily)' if lazy else ''}"
        for name, tree in MODULES.items()
        for module, lazy in _tool_imports(tree)
        if not (name == _BENCH_VERB and lazy and _in(module, "fedprivacy_bench"))
    ]
    assert offenders == []


def test_the_bench_harnesses_left_the_package():
    assert not any(_in(name, "fedprivacy.bench") for name in MODULES)
    assert "fedprivacy.adapters.flower.comparison" not in MODULES and "fedprivacy.adapters.flower.grid" not in MODULES


def test_the_bench_harnesses_import_no_test_or_proof_module():
    """The harnesses ship with the library, so they may not lean on the tests' or the proofs' helpers."""
    import fedprivacy_bench

    harnesses = Path(fedprivacy_bench.__file__).parent
    offenders = [
        f"{path.name} imports {module}"
        for path in sorted(harnesses.rglob("*.py"))
        for module, _ in _tool_imports(ast.parse(path.read_text(encoding="utf-8")))
        if not _in(module, "fedprivacy_bench")
    ]
    assert offenders == []


def test_the_old_submodel_names_are_deprecated_aliases_of_the_new_ones():
    import fedprivacy.submodel as submodel
    from fedprivacy.submodel.client import DeviceState
    from fedprivacy.submodel.interfaces import GlobalModel, LocalTrainer
    from fedprivacy.submodel.server import SubmodelOutbound

    assert submodel.SubmodelServer is GlobalModel and submodel.SubmodelClient is LocalTrainer
    assert submodel.ClientState is DeviceState and submodel.Outbound is SubmodelOutbound
