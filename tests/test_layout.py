"""No test module imports from another test module: shared fixtures live in conftest.py files
and tests/plugins/, shared helpers in plain modules (tests/helpers.py, tests/district.py, …)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _imported_modules(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
            out.extend(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
    return out


def imports_of_test_modules(root: Path) -> list[str]:
    """`file: module` for every import of a test_* or conftest module under `root`."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        for module in _imported_modules(path):
            parts = module.split(".")
            if parts[0] == "tests" and any(
                p.startswith("test_") or p == "conftest" for p in parts[1:]
            ):
                bad.append(f"{path.relative_to(root)}: {module}")
    return bad


def test_no_module_imports_a_test_module_or_a_conftest() -> None:
    assert imports_of_test_modules(TESTS) == []


def test_the_check_finds_such_an_import(tmp_path: Path) -> None:
    (tmp_path / "test_a.py").write_text("from tests.app." + "test_ogc import loaded\n")
    (tmp_path / "test_b.py").write_text("import tests.etl.conftest\nfrom tests import helpers\n")
    assert imports_of_test_modules(tmp_path) == [
        "test_a.py: tests.app.test_ogc",
        "test_a.py: tests.app.test_ogc.loaded",
        "test_b.py: tests.etl.conftest",
    ]
