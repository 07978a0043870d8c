"""The receiver's gunicorn settings (app/gunicorn_conf.py) follow the documented environment."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest

CONF = Path(__file__).resolve().parents[2] / "app" / "gunicorn_conf.py"


def settings_with(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    for name in (
        "CRMHUB_ACCESS_LOG",
        "CRMHUB_LOG_LEVEL",
        "CRMHUB_WEB_WORKERS",
        "CRMHUB_WEB_THREADS",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(CONF))


def test_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = settings_with(monkeypatch)
    assert conf["accesslog"] is None  # off unless asked for
    assert conf["loglevel"] == "info"
    assert conf["threads"] == 8


def test_access_log_log_level_workers_and_threads_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conf = settings_with(
        monkeypatch,
        CRMHUB_ACCESS_LOG="-",
        CRMHUB_LOG_LEVEL="WARNING",
        CRMHUB_WEB_WORKERS="3",
        CRMHUB_WEB_THREADS="4",
    )
    assert conf["accesslog"] == "-"
    assert conf["loglevel"] == "warning"
    assert (conf["workers"], conf["threads"]) == (3, 4)
