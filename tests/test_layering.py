"""Dependencies point one way: hub/ and merges/ never import workers/; the libraries import no Django.

A static scan (ast), so an import hidden inside a function or behind a
``try`` counts as much as one at the top of a module.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _s3_bucket() -> None:  # nothing here needs the database or S3
    return None


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _imports_of(package: str, top: str) -> list[str]:
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for lineno, module in _imported_modules(tree):
            if module == top or module.startswith(f"{top}."):
                offenders.append(f"{path.relative_to(ROOT)}:{lineno} imports {module}")
    return offenders


@pytest.mark.parametrize("package", ["hub", "merges"])
def test_no_module_imports_workers(package):
    assert _imports_of(package, "workers") == []


@pytest.mark.parametrize("package", ["hub/previews/renderer", "merges/engine"])
def test_libraries_name_no_django_import(package):
    assert _imports_of(package, "django") == []


def test_renderer_imports_without_django():
    modules = ", ".join(
        f"hub.previews.renderer.{name}"
        for name in ("base_configs", "errors", "grid", "infotext", "invariance", "pipeline", "render", "spec", "sweep")
    )
    code = f"import sys, {modules}; print('django' in sys.modules, 'workers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
