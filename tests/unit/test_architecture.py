"""Imports follow the data flow (DESIGN.md): app and workers never import each other,
connectors import only the core, and the core imports nothing of ours."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "app", "workers", "connectors")
ALLOWED = {
    "core": {"core"},
    "connectors": {"core", "connectors"},
    "workers": {"core", "connectors", "workers"},
    "app": {"core", "connectors", "app"},
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_flow_one_way(package: str) -> None:
    offending = {
        str(path.relative_to(ROOT)): sorted(imports_of(path) - ALLOWED[package])
        for path in (ROOT / package).rglob("*.py")
        if imports_of(path) - ALLOWED[package]
    }
    assert offending == {}, f"{package} imports what it must not: {offending}"


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from workers.delivery import run_delivery\nimport app.webhooks\n")
    assert imports_of(bad) == {"workers", "app"}
