"""Imports follow the data flow (docs/architecture.md): app and workers never import each other,
connectors import only the core, and the core imports nothing of ours. And the ledger's keys
and Redis are the ledger's own."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from core.ledger.keys import LAYOUT

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


#: how a ledger key starts after its prefix (core/ledger/keys.py LAYOUT)
LEDGER_KEY_HEADS = sorted({kind.pattern.split(":")[0] for kind in LAYOUT})
_HEADS = "|".join(LEDGER_KEY_HEADS)
BUILT_KEY = re.compile(r"""(}|["']):(""" + _HEADS + r")\b")
LEDGER_REDIS = re.compile(r"\bledger\.redis\b|\.ledger\.redis\b")
#: the ledger is opened one way, open_ledger(settings), in every process
LEDGER_BUILT = re.compile(r"\bLedger\(")


def ledger_outsiders() -> list[Path]:
    return [
        path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if (ROOT / "core" / "ledger") not in path.parents
    ]


def test_nothing_outside_the_ledger_builds_its_keys_or_calls_its_redis() -> None:
    """The key layout is the ledger's (core/ledger/keys.py); everyone else goes through its
    methods (`ledger.tokens`, `ledger.alerts`, `ledger.generations`, `ledger.sweep_lock`...),
    and opens it with open_ledger."""
    offending = {
        str(path.relative_to(ROOT)): [
            line.strip()
            for line in path.read_text().splitlines()
            if BUILT_KEY.search(line) or LEDGER_REDIS.search(line) or LEDGER_BUILT.search(line)
        ]
        for path in ledger_outsiders()
    }
    assert {path: lines for path, lines in offending.items() if lines} == {}


def test_the_key_check_sees_a_violation() -> None:
    for line in (
        'self.key = f"{prefix}:alerts"',
        'f"{self.prefix}:conn:{c}:oauth"',
        'client.get(prefix + ":config:generation")',
        "rt.ledger.redis.lock(name)",
        "ledger = Ledger(client, prefix=s.key_prefix,",
    ):
        assert BUILT_KEY.search(line) or LEDGER_REDIS.search(line) or LEDGER_BUILT.search(line), (
            line
        )
    assert not BUILT_KEY.search('f"{self.key_prefix}:q:"')  # kombu's, not the ledger's
