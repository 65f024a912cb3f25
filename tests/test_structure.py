"""The package's import graph keeps its layers: no import cycles, and lower layers never import
upper ones (a request flows downward: API → policy → catalog / blobs).

The graph is read with ``ast`` from ``chuk_artifacts/*.py``, without importing anything. Every
import counts, including those inside functions (they are still dependencies), except those in
an ``if TYPE_CHECKING:`` block (annotations only, never executed).
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

#: The layers, top to bottom; a module may import modules of its own layer or of lower ones.
#: Every module of the package must be listed here: add a new module to the layer it belongs to.
#: Names not (or no longer) in the package are allowed, so the map may name the intended modules.
LAYERS: dict[str, tuple[str, ...]] = {
    # the public entry points: what an application or an operator calls
    # (``testing``: the conformance kits, which build stores as an application does)
    "api": ("__init__", "__main__", "store", "aio", "views", "gateway", "cli", "cli_artifacts", "cli_group", "testing"),
    # features and policy: the rules a request passes through on its way down (``core``: the
    # parts a store is made of; the feature modules: its public methods by feature)
    "policy": (
        "core",
        "listing",
        "streaming",
        "presign",
        "uploads",
        "shares",
        "maintenance",
        "session_methods",
        "access",
        "policy",
        "writes",
        "events",
        "fsck",
    ),
    # plugin plumbing: the plugin manager, the hooks, the interfaces and the built-in plugins
    # (``sessions``: the catalog session provider)
    "plugins": ("plugins", "hookspecs", "backends", "builtin_sessions", "builtin_text", "interfaces", "sessions"),
    # backends and data: rows (SQL) and bytes (fsspec, S3)
    "backends": ("catalog", "schema", "blobs", "object_store", "s3", "azure_blob", "gcs", "sqlite_blobs", "migrate"),
    # the base every layer may use
    "base": ("grid", "models", "errors", "exceptions", "config", "signing", "fulltext"),
}

#: Backend modules may import only these layers (a backend never imports a policy module).
BACKEND_MAY_IMPORT = ("backends", "base")

PACKAGE = "chuk_artifacts"
SOURCE = Path(__file__).resolve().parent.parent / PACKAGE

LAYER_OF = {module: layer for layer, modules in LAYERS.items() for module in modules}
RANK = {layer: rank for rank, layer in enumerate(LAYERS)}  # 0 is the top


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, modules: set[str]) -> list[tuple[str, int]]:
    """(imported module of the package, line) for every import in ``tree`` that runs."""
    found: list[tuple[str, int]] = []

    def target(name: str) -> str | None:
        """The package's module that ``name`` (dotted, absolute) refers to, if any."""
        parts = name.split(".")
        if parts[0] != PACKAGE:
            return None
        return parts[1] if len(parts) > 1 and parts[1] in modules else "__init__"

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                module = target(alias.name)
                if module:
                    found.append((module, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: the package is flat, so ``.`` is chuk_artifacts
                base = ".".join([PACKAGE, *filter(None, [node.module])])
            else:
                base = node.module or ""
            module = target(base)
            if module == "__init__" and base == PACKAGE:
                # ``from . import store``: each name that is a module is an import of that module
                named = [alias.name for alias in node.names if alias.name in modules]
                found.extend((name, node.lineno) for name in named)
                if len(named) < len(node.names):
                    found.append(("__init__", node.lineno))
            elif module:
                found.append((module, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _graph() -> dict[str, dict[str, int]]:
    """module → {imported module → first line that imports it} over the package."""
    paths = {path.stem: path for path in sorted(SOURCE.glob("*.py"))}
    graph: dict[str, dict[str, int]] = {}
    for name, path in paths.items():
        edges: dict[str, int] = {}
        for imported, line in _imports(ast.parse(path.read_text(encoding="utf-8")), set(paths)):
            if imported != name:
                edges.setdefault(imported, line)
        graph[name] = edges
    return graph


GRAPH = _graph()


def _edge(source: str, target: str) -> str:
    return f"{source} → {target} ({PACKAGE}/{source}.py:{GRAPH[source][target]})"


def _cycles(graph: dict[str, dict[str, int]]) -> list[tuple[list[str], list[str]]]:
    """(one shortest cycle, all its modules) for each strongly connected component of more than
    one module: the modules that all reach each other through imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def strongconnect(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                strongconnect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            strongconnect(node)

    cycles = []
    for component in sorted(components):
        members = set(component)
        best: list[str] | None = None
        for start in component:  # the shortest way back to ``start`` inside the component
            parents: dict[str, str] = {}
            queue = deque([start])
            while queue:
                node = queue.popleft()
                for succ in sorted(graph[node]):
                    if succ not in members or succ in parents:
                        continue
                    parents[succ] = node
                    queue.append(succ)
                if start in parents:
                    break
            if start not in parents:
                continue
            path = [start]
            node = parents[start]
            while node != start:
                path.append(node)
                node = parents[node]
            path.append(start)
            path.reverse()
            if best is None or len(path) < len(best):
                best = path
        assert best is not None
        cycles.append((best, component))
    return cycles


def test_every_module_is_in_the_layer_map() -> None:
    missing = sorted(set(GRAPH) - set(LAYER_OF))
    assert not missing, (
        f"{', '.join(f'{m}.py' for m in missing)}: not in the layer map; add each to the layer it "
        f"belongs to in LAYERS at the top of {Path(__file__).name}"
    )


def test_a_module_is_in_one_layer_only() -> None:
    listed = [module for modules in LAYERS.values() for module in modules]
    twice = sorted({m for m in listed if listed.count(m) > 1})
    assert not twice, f"in more than one layer of LAYERS: {', '.join(twice)}"


def test_no_import_cycles() -> None:
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles in the package:\n" + "\n".join(
        "  "
        + " → ".join(cycle)
        + "\n"
        + "".join(f"      {_edge(a, b)}\n" for a, b in zip(cycle, cycle[1:]))
        + (f"    (and more: these all import each other: {', '.join(group)})\n" if len(group) > len(cycle) - 1 else "")
        for cycle, group in cycles
    )


def test_backends_import_no_upper_layer() -> None:
    """``catalog``, ``schema``, ``blobs``, ``s3``, ``migrate``: base modules and each other only."""
    allowed = {m for layer in BACKEND_MAY_IMPORT for m in LAYERS[layer]}
    bad = [
        _edge(source, target) + f" [{LAYER_OF.get(target, 'unmapped')}]"
        for source in sorted(GRAPH)
        if LAYER_OF.get(source) == "backends"
        for target in sorted(GRAPH[source])
        if target not in allowed
    ]
    assert not bad, "backend modules import modules above them:\n  " + "\n  ".join(bad)


def test_lower_layers_do_not_import_upper_ones() -> None:
    bad = [
        f"{_edge(source, target)} [{LAYER_OF[source]} imports {LAYER_OF[target]}]"
        for source in sorted(GRAPH)
        if source in LAYER_OF
        for target in sorted(GRAPH[source])
        if target in LAYER_OF and RANK[LAYER_OF[target]] < RANK[LAYER_OF[source]]
    ]
    assert not bad, "imports against the layering (top first: " + " → ".join(LAYERS) + "):\n  " + ("\n  ".join(bad))


# -- the checker itself, on small made-up packages -------------------------------------------


def _edges_of(source: str, modules: set[str]) -> list[str]:
    return sorted({m for m, _ in _imports(ast.parse(source), modules)})


def test_checker_counts_imports_in_functions_but_not_type_checking_blocks() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import typing\n"
        "from .errors import E\n"
        "from . import grid, __version__\n"
        "import chuk_artifacts.catalog\n"
        "if TYPE_CHECKING:\n"
        "    from .store import ArtifactStore\n"
        "if typing.TYPE_CHECKING:\n"
        "    from .views import View\n"
        "else:\n"
        "    from .blobs import Blobs\n"
        "def f():\n"
        "    from .uploads import u\n"
        "    from chuk_artifacts import ArtifactStore\n"
    )
    modules = {"errors", "grid", "catalog", "store", "views", "blobs", "uploads"}
    assert _edges_of(source, modules) == ["__init__", "blobs", "catalog", "errors", "grid", "uploads"]


def test_checker_reports_a_cycle_with_its_path() -> None:
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1, "d": 1}, "d": {}, "e": {"f": 1}, "f": {"e": 1}}
    assert _cycles(graph) == [(["a", "b", "c", "a"], ["a", "b", "c"]), (["e", "f", "e"], ["e", "f"])]
    bigger = {"a": {"b": 1}, "b": {"a": 1, "c": 1}, "c": {"d": 1}, "d": {"b": 1}}
    assert _cycles(bigger) == [(["a", "b", "a"], ["a", "b", "c", "d"])]
    assert _cycles({"a": {"b": 1}, "b": {}}) == []
