"""What every CLI command shares: settings, config, the ledger, and --json output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, NoReturn, TypeVar

import click

from connectors.validation import EXIT_CONFIG
from core.archive import Archive, open_archive
from core.config import Config, load_config
from core.errors import ArchiveUnavailable, ConfigError, LedgerUnavailable
from core.ledger import Ledger, open_ledger
from core.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

EXIT_UNAVAILABLE = 3
EXIT_NOT_FOUND = 4


@dataclass
class CliContext:
    _settings: Settings | None = None
    _config: Config | None = None
    _ledger: Ledger | None = None
    _archive: Archive | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.from_env()
        return self._settings

    @property
    def config(self) -> Config:
        """For operator commands (dlq, events, mappings): they read names and mappings, not
        secrets or connectors, so they work from a host without the hub's secrets. What runs
        the hub loads connectors.validation.validated_config (every check)."""
        if self._config is None:
            self._config = load_config(
                self.settings.config_path, self.settings.environ, check_secrets=False
            )
        return self._config

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = open_ledger(self.settings)
        return self._ledger

    @property
    def archive(self) -> Archive:
        """The archive (core/archive/), its schema migrated on first use."""
        if self._archive is None:
            self._archive = open_archive(self.settings)
        return self._archive


pass_ctx = click.make_pass_decorator(CliContext, ensure=True)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def checked_config(settings: Settings, as_json: bool, consequence: str = "") -> Config:
    """The configuration as every process validates it (connectors/validation.py); on any
    problem, every problem printed (or as JSON), `consequence` said, and exit 2."""
    from connectors.validation import validated_config

    try:
        return validated_config(settings)
    except ConfigError as exc:
        if as_json:
            emit_json({"ok": False, "problems": [p.as_dict() for p in exc.problems]})
        else:
            for problem in exc.problems:
                click.echo(str(problem))
            click.echo(f"{len(exc.problems)} problem(s) found{consequence}.")
        sys.exit(EXIT_CONFIG)


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"crmhub: {message}", err=True)
    sys.exit(code)


def handles_hub_errors(func: F) -> F:
    """Configuration and Redis problems end a command with a clear message and exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(f"crmhub: {problem}", err=True)
            sys.exit(EXIT_CONFIG)
        except LedgerUnavailable as exc:
            fail(f"{exc} (is the hub's Redis running? see CRMHUB_REDIS_URL)", EXIT_UNAVAILABLE)
        except ArchiveUnavailable as exc:
            fail(f"{exc} (see CRMHUB_ARCHIVE_URL)", EXIT_UNAVAILABLE)

    return wrapper  # type: ignore[return-value]
