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


COMPONENTS = ("audio", "errors", "options", "features", "cache", "models", "data", "evaluate")
RECIPES = ("extract", "train", "infer", "serve", "demo", "cli")


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def recipe_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(component module, recipe module) edges. The `score` command lives in
    evaluate/command.py and is the one recipe there (it wires the generation mode of infer/)."""
    return sorted((a, b) for a, targets in graph.items() for b in targets
                  if layer(a) in COMPONENTS and layer(b) in RECIPES
                  and a != "musilingo.evaluate.command")


def test_components_never_import_recipes():
    """features, cache, models, data and evaluate are a library; the verbs wire them."""
    assert recipe_imports({"musilingo.models.x": {"musilingo.train.y"},
                           "musilingo.train.y": {"musilingo.models.x"}}) == \
        [("musilingo.models.x", "musilingo.train.y")]
    assert recipe_imports(import_graph()) == []
