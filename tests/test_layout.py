"""The library's layers, read from the source: every import counts, at module level, inside a function or
under TYPE_CHECKING, so a circle cannot hide in a lazy import."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Bottom up, as the README's layout says: a layer imports only the layers below it (and itself).
LAYERS = [
    "classifier.schema",
    "classifier.intake",
    "classifier.knowledge",
    "classifier.models",
    "classifier.results",
    "classifier",  # cli.py and __main__.py, on top of the library
]
PACKAGES = ("classifier", "train", "app_pages")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imported(path: Path) -> set[str]:
    """Every module `path` imports (from `a.b import c` counts `a.b.c` when that is a module)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


GRAPH = {name: {m for m in _imported(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def _layer(module: str) -> int | None:
    matches = [
        rank for rank, prefix in enumerate(LAYERS) if module == prefix or module.startswith(prefix + ".")
    ]
    return max(matches, key=lambda rank: len(LAYERS[rank]), default=None)  # the longest prefix names it


def test_each_layer_imports_only_the_layers_below_it():
    upward = [
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if _layer(name) is not None
        for target in sorted(targets)
        if (_layer(target) or 0) > _layer(name)  # type: ignore[operator]
    ]
    assert not upward, "\n".join(upward)


def test_a_module_belongs_to_its_sub_package_layer():
    assert (
        _layer("classifier.intake.lists") == 1 and _layer("classifier.cli") == 5 and _layer("train.x") is None
    )


def test_each_sub_package_says_what_it_holds():
    library = ROOT / "classifier"
    packages = sorted(p.parent.name for p in library.glob("*/__init__.py"))
    assert packages == ["intake", "knowledge", "models", "results", "schema"]
    assert {f"classifier.{name}" for name in packages} == set(LAYERS[:-1])  # every package has its layer
    for name in packages:
        assert ast.get_docstring(ast.parse((library / name / "__init__.py").read_text()))


def test_the_library_never_imports_streamlit_pages_or_training():
    assert sum(name.startswith("classifier.") for name in MODULES) > 30  # the sub-packages are walked
    assert "classifier.models.runtimes.cache" in MODULES  # and the packages inside them
    outside = [
        f"{name} imports {target}"
        for name, path in MODULES.items()
        if name.startswith("classifier")
        for target in sorted(_imported(path))
        if target.split(".")[0] in ("streamlit", "app_pages", "train")
    ]
    assert not outside, "\n".join(outside)


def test_imports_are_absolute_so_the_checks_see_them():
    relative = [
        name
        for name, path in MODULES.items()
        if any(
            isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(ast.parse(path.read_text()))
        )
    ]
    assert not relative, relative


def test_training_never_imports_the_pages():
    assert not [
        (name, target)
        for name, targets in GRAPH.items()
        if name.startswith("train")
        for target in targets
        if target.startswith("app_pages")
    ]


def test_one_module_builds_predictors():
    """The CLI, the app, the engines, evaluation and training all build theirs with PredictorOptions."""
    builders = sorted(
        name
        for name, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", getattr(node.func, "attr", "")) == "Predictor"
    )
    assert builders == ["classifier.models.predictors"]


def test_no_module_imports_itself_back_through_others():
    circles = _circles(GRAPH)
    assert not circles, "\n".join(" -> ".join(c) for c in circles)


def test_the_check_finds_a_circle_when_there_is_one():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _circles(graph) == [["a", "b", "c", "a"]]


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One path round each circle (the strongly connected parts of more than one module), Tarjan's way."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    parts: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            part = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                part.append(top)
                if top == node:
                    break
            if len(part) > 1:
                parts.append(sorted(part))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_path_round(graph, part) for part in parts]


def _path_round(graph: dict[str, set[str]], part: list[str]) -> list[str]:
    start, inside = part[0], set(part)
    path, node = [start], start
    while True:
        node = min(n for n in graph[node] if n in inside)
        path.append(node)
        if node == start or path.count(node) > 1:
            return path
