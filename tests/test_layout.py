"""The one-way dependencies DESIGN.md sets: the library never reaches into the app or training."""

from __future__ import annotations

import ast
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[1] / "classifier"
FORBIDDEN = ("streamlit", "pages", "train")


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_library_imports_neither_streamlit_nor_the_pages_nor_training() -> None:
    modules = sorted(LIBRARY.rglob("*.py"))
    assert len(modules) > 30 and any(p.parent != LIBRARY for p in modules)  # the sub-packages are walked
    offenders = {
        str(p.relative_to(LIBRARY)): sorted(imported_roots(p) & set(FORBIDDEN))
        for p in modules
        if imported_roots(p) & set(FORBIDDEN)
    }
    assert offenders == {}


def test_each_sub_package_says_what_it_holds() -> None:
    packages = sorted(p.parent.name for p in LIBRARY.glob("*/__init__.py"))
    assert packages == ["intake", "knowledge", "models", "results"]
    for name in packages:
        assert ast.get_docstring(ast.parse((LIBRARY / name / "__init__.py").read_text()))
