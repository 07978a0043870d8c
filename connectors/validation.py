"""The configuration as this install runs it: the one check every entry point takes.

`crmhub config check`, `crmhub reload`, `crmhub serve`, the receiver (web), the Celery worker
and beat all load the YAML through `validated_config`, so what one accepts every other runs,
and what one refuses every other refuses with the same problems: shape, references between
sections, the connectors this install has and every secret the YAML names. It lives beside the
registry because only the registry knows which connectors exist, and because this package is
the one place both app and workers may import (they never import each other).
"""

from __future__ import annotations

import sys

from connectors.registry import CONNECTORS
from core.config import Config, load_config
from core.errors import ConfigError
from core.settings import Settings

#: a process refused its configuration: the exit code of `crmhub config check` on a problem
EXIT_CONFIG = 2


def validated_config(settings: Settings) -> Config:
    """The configuration from `settings` with every check, or ConfigError with every problem."""
    return load_config(
        settings.config_path, settings.environ, check_secrets=True, connectors=CONNECTORS
    )


def config_or_exit(settings: Settings, kind: str) -> Config:
    """For a process's start (the receiver's master, the worker, beat): the configuration, or
    every problem on stderr, as `crmhub config check` prints them, and exit 2, rather than a
    process that runs but cannot deliver (a worker would fail every task)."""
    try:
        return validated_config(settings)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"crmhub {kind}: {problem}", file=sys.stderr)
        print(
            f"crmhub {kind}: {len(exc.problems)} problem(s) in the configuration; not "
            "starting (`crmhub config check` lists them too)",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(EXIT_CONFIG) from None
