"""Log lines as JSON (CRMHUB_LOG_FORMAT=json): one object per line, in web, worker and beat.

Each line has `at` (ISO 8601 UTC), `level`, `logger`, `process` (web, worker, beat, serve),
`pid` and `message`; a line about an event, a delivery or an alert also carries its ids and
the connection (`event_id`, `delivery_id`, `connection`, `source`, `alert_id`, `mapping`),
given as `extra=` by the code that logs it. Nothing here adds data a line did not already
hold: what may not be logged (secrets, signatures, bodies) is never put in a message.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

#: the `extra=` keys a line may carry, copied into its JSON object
CONTEXT_KEYS = ("event_id", "delivery_id", "connection", "source", "alert_id", "mapping")


class JsonFormatter(logging.Formatter):
    def __init__(self, process: str = "crmhub") -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "process": self.process,
            "pid": os.getpid(),
            "message": record.getMessage(),
        }
        for key in CONTEXT_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def use_json_logs(process: str, *loggers: logging.Logger) -> None:
    """Every handler of the root logger (and of `loggers`) formats as JSON from now on."""
    formatter = JsonFormatter(process)
    for logger in (logging.getLogger(), *loggers):
        for handler in logger.handlers:
            handler.setFormatter(formatter)


def gunicorn_logconfig(process: str = "web") -> dict[str, Any]:
    """gunicorn's `logconfig_dict` for JSON lines: its error and access logs and the app's
    own loggers, on standard error (gunicorn's default errorlog `-`)."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "core.logs.JsonFormatter", "process": process}},
        "handlers": {"console": handler},
        "root": {"level": "INFO", "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
        },
    }
