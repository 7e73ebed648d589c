"""The house rules that keep the rooms apart, checked on the installed package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ["explore", "bptt", "cells", "compare", "activations", "train"]


def test_figures_and_engine_import_nothing_from_the_web_stack():
    """A notebook can build every figure without FastAPI, Starlette or pydantic."""
    modules = ", ".join(f"gradient_flow_lab.app.figures.{name}" for name in FIGURES)
    code = (f"import sys, {modules}, gradient_flow_lab.engine; "
            "print(sorted(m for m in ('fastapi', 'starlette', 'pydantic', 'jinja2') "
            "if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd="/").stdout.strip()
    assert loaded == "[]"


def _imports(path: Path) -> set[str]:
    """Absolute modules imported at run time (relative imports and TYPE_CHECKING blocks left
    out: the first stay inside the package, the second are for annotations only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(inner) for node in ast.walk(tree)
                   if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
                   for inner in ast.walk(node)}
    names = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "engine").rglob("*.py")), ids=str)
def test_the_engine_imports_only_numpy_and_the_standard_library(path):
    third_party = {name.split(".")[0] for name in _imports(path)} - set(sys.stdlib_module_names)
    assert third_party <= {"numpy", "gradient_flow_lab", "safetensors"}, third_party


BACKWARDS = ("gradient_flow_lab.app.views", "gradient_flow_lab.app.routers")


@pytest.mark.parametrize("path", sorted((ROOT / "app" / "figures").glob("*.py")), ids=str)
def test_figures_never_import_views_or_routers(path):
    """browser -> router -> view -> engine -> figures -> JSON: no step back."""
    assert not {name for name in _imports(path) if name.startswith(BACKWARDS)}
