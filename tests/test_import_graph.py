"""The package's import graph has no circles: data flows one way (audio -> encoder -> cache ->
adapter -> LLM -> text -> score), and components never import the recipes that wire them.

Every import counts, module-level or inside a function, since a function-level import that closes
a circle is still a circle a reader must untangle."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "musilingo"


def import_graph() -> dict[str, set[str]]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        is_package = path.name == "__init__.py"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    graph = {name: set() for name in modules}
    for name, (path, is_package) in modules.items():
        here = name if is_package else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module
                           for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_detector_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_package_has_no_import_circles():
    graph = import_graph()
    assert len(graph) > 50 and "musilingo.features" in graph["musilingo.train.data"]
    assert cycles(graph) == []


ARCHITECTURE = Path(__file__).resolve().parents[1] / "docs" / "ARCHITECTURE.md"


def documented_layers() -> list[set[str]]:
    """The layer table of docs/ARCHITECTURE.md ("| 3 | `features`, `evaluate` | ..."), bottom
    first: the document and this test are one statement."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    table = next(b for b in text[text.index("## Layers"):].split("\n\n")
                 if b.startswith("| layer |"))
    layers = []
    for row in table.splitlines()[2:]:
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        layers.append({name.strip(" `") for name in cells[1].split(",")})
    return layers


def package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "musilingo"


def layer_violations(graph: dict[str, set[str]], layers: list[set[str]]) -> list[str]:
    """Imports of a package from its own layer or a higher one (other than itself)."""
    level = {name: i for i, names in enumerate(layers) for name in names}
    out = []
    for a, targets in graph.items():
        for b in targets:
            pa, pb = package(a), package(b)
            if pa != pb and level[pb] >= level[pa]:
                out.append(f"{a} -> {b}")
    return sorted(out)


def test_every_package_is_in_one_documented_layer():
    layers = documented_layers()
    names = [n for layer in layers for n in layer]
    assert len(names) == len(set(names))
    assert set(names) == {package(m) for m in import_graph()}


def test_packages_import_only_lower_layers():
    """Data flows one way: a package imports only packages of layers below its own, as
    docs/ARCHITECTURE.md draws them (components below, verbs on top)."""
    layers = [{"errors"}, {"models"}, {"train"}]
    assert layer_violations({"musilingo.models.x": {"musilingo.train.y"}}, layers) == \
        ["musilingo.models.x -> musilingo.train.y"]
    assert layer_violations({"musilingo.train.y": {"musilingo.models.x"}}, layers) == []
    assert layer_violations(import_graph(), documented_layers()) == []


def test_no_module_imports_a_verb():
    """A verb is a click command in a `command` module (or cli.py); nothing imports one but the
    command line itself."""
    graph = import_graph()
    verbs = {m for m in graph if m.endswith(".command") or m == "musilingo.cli"}
    assert len(verbs) >= 8
    callers = sorted((a, b) for a, targets in graph.items() for b in targets & verbs
                     if a not in ("musilingo.__main__", "musilingo.cli"))
    assert callers == [], callers
