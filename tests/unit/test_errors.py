"""One error root (core/errors.py): every exception crmhub defines, and everything it raises
on purpose, derives from CrmhubError, and the tree drawn in the module's docstring is the tree
the code has. The packages are walked, so a new module is checked without listing it here."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import click
import marshmallow
import pytest
import redis

import core.errors
from core.errors import CrmhubError

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "app", "workers", "connectors")
#: builds the receiver from the environment as it is imported (gunicorn's entry point); the
#: fakes' `__main__` modules (checked through the modules they run) are left out too
NOT_IMPORTED = {"app.wsgi"}
#: raised on purpose but not ours, and rightly so: a command's exit code, a caller's bug
#: (core/errors.py says why), the schema library's protocol inside the config schema (the
#: loader turns each into a ConfigProblem), click's, for a bad command-line argument, and the
#: Redis client's own, raised inside the ledger's Redis adapter (core/ledger/lane.py) so that
#: the ledger's edge translates it with the rest (LedgerUnavailable)
FOREIGN = (
    SystemExit,
    TypeError,
    marshmallow.ValidationError,
    click.ClickException,
    redis.RedisError,
)


@pytest.fixture(scope="module")
def modules() -> Iterator[list[ModuleType]]:
    with pytest.MonkeyPatch.context() as patch:
        # workers.celery_app resolves its broker as it is imported: never the embedded one
        patch.setenv("CRMHUB_REDIS_URL", "redis://127.0.0.1:9/0")
        found = []
        for package in PACKAGES:
            top = importlib.import_module(package)
            found.append(top)
            for info in pkgutil.walk_packages(top.__path__, f"{package}."):
                # a package's __main__ runs its command line when imported
                if info.name not in NOT_IMPORTED and not info.name.endswith(".__main__"):
                    found.append(importlib.import_module(info.name))
        yield found


#: the fakes play a vendor's server: their exceptions are that server's own control flow
#: (answered as the vendor's error bodies), never raised into the hub
FAKES = "connectors.fakes"


def hub_modules(modules: list[ModuleType]) -> list[ModuleType]:
    return [m for m in modules if not m.__name__.startswith(FAKES)]


def defined_exceptions(modules: list[ModuleType]) -> dict[str, type[BaseException]]:
    return {
        f"{module.__name__}.{name}": value
        for module in modules
        for name, value in vars(module).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == module.__name__
    }


def test_the_walk_sees_every_package_and_the_taxonomy(modules: list[ModuleType]) -> None:
    names = {m.__name__ for m in modules}
    assert {
        "core.errors",
        "core.intake",
        "app.cli.serve",
        "workers.tasks",
        "connectors.hubspot",
    } <= names
    assert {
        "core.errors.HubError",
        "core.intake.BadPayload",
        "core.signatures.base.SignatureError",
    } <= set(defined_exceptions(modules))


def test_every_exception_crmhub_defines_derives_from_the_root(modules: list[ModuleType]) -> None:
    outside = sorted(
        name
        for name, cls in defined_exceptions(hub_modules(modules)).items()
        if not issubclass(cls, CrmhubError)
    )
    assert outside == []


def raised_classes(module: ModuleType) -> Iterator[tuple[str, object]]:
    """(file:line, what it names) for each `raise Name(...)` / `raise a.Name(...)`."""
    path = Path(module.__file__ or "")
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
            continue
        func = node.exc.func
        where = f"{path.relative_to(ROOT)}:{node.lineno}"
        if isinstance(func, ast.Name):
            yield where, getattr(module, func.id, getattr(builtins, func.id, func.id))
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner = getattr(module, func.value.id, None)
            yield where, getattr(owner, func.attr, ast.unparse(func))


def test_what_crmhub_raises_on_purpose_is_in_the_taxonomy(modules: list[ModuleType]) -> None:
    """`raise X(...)` anywhere in the packages: X is ours (or a function making one of ours),
    or one of the few foreign exceptions raised on purpose."""
    wrong = []
    for module in hub_modules(modules):
        for where, raised in raised_classes(module):
            if isinstance(raised, str):
                wrong.append(f"{where}: {raised} (not found in the module: import it there)")
            elif inspect.isclass(raised) and not issubclass(raised, (CrmhubError, *FOREIGN)):
                wrong.append(f"{where}: {raised.__name__}")
    assert wrong == []


def drawn_tree() -> dict[str, int]:
    """Each class drawn in core/errors.py's docstring, with its depth in the tree."""
    lines = re.findall(
        r"^ {4}((?:[│ ]   )*[├└]── )?([A-Z]\w+)", core.errors.__doc__ or "", re.MULTILINE
    )
    return {name: len(prefix) // 4 for prefix, name in lines}


def test_the_docstring_draws_the_tree_the_code_has(modules: list[ModuleType]) -> None:
    def subclasses(cls: type[BaseException]) -> Iterator[type[BaseException]]:
        for sub in cls.__subclasses__():
            if sub.__module__.split(".")[0] in PACKAGES:
                yield sub
                yield from subclasses(sub)

    drawn = drawn_tree()
    assert drawn["CrmhubError"] == 0
    assert set(drawn) == {"CrmhubError"} | {cls.__name__ for cls in subclasses(CrmhubError)}
    for cls in subclasses(CrmhubError):  # drawn under its nearest parent of ours
        parent = next(b for b in cls.__mro__[1:] if issubclass(b, CrmhubError))
        assert drawn[cls.__name__] == drawn[parent.__name__] + 1, cls.__name__
