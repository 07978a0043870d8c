"""The Celery application: `celery -A workers.celery_app worker|beat`.

Delivery guarantees live in the ledger, not the broker (see docs/architecture.md); the
settings here keep the broker from making things worse: a message is acknowledged only after
its task ran (acks_late), a worker killed mid-task puts the message back
(reject_on_worker_lost), each process holds one message at a time (prefetch 1), and no long
countdowns are used, so the visibility timeout only needs to outlast the longest task.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from celery import Celery
from celery.beat import PersistentScheduler
from celery.signals import after_setup_logger, after_setup_task_logger, beat_init, celeryd_init

from connectors.validation import config_or_exit
from core.amqp import amqp_queue
from core.logs import JsonFormatter, use_json_logs
from core.observability import init_sentry
from core.redis_client import kombu_broker, resolve_redis_url
from core.settings import Settings
from workers import broker

#: seconds before Redis redelivers an unacknowledged message; far above any task's run time
VISIBILITY_TIMEOUT = 3600
SWEEP_INTERVAL_SECONDS = 2.0
#: the archive pass (workers/archiver.py): often enough that a move is a small batch
ARCHIVE_INTERVAL_SECONDS = 10.0
#: how often the polling sources are looked at (each polls at its own `every`)
POLL_DISPATCH_SECONDS = 1.0


def make_celery(settings: Settings) -> Celery:
    redis_url = resolve_redis_url(settings)
    # a redis+sentinel:// URL becomes kombu's sentinel:// one and its master_name
    broker_url, sentinel_options = kombu_broker(settings.broker_url or redis_url)
    app = Celery(
        "crmhub",
        broker=broker_url,
        include=["workers.tasks"],
        amqp="workers.broker:PromptReconnectAMQP",
    )
    app.conf.update(
        task_default_queue=settings.celery_queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        # a lost broker is tried again every second (workers.broker) for as long as it takes:
        # a worker or scheduler that gave up would stay down after Redis came back
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        broker_transport_options={
            "global_keyprefix": settings.celery_keyprefix,
            "visibility_timeout": VISIBILITY_TIMEOUT,
            **sentinel_options,
        },
        # under the var directory, like the embedded Redis: never a path shared by every hub
        # (and every test run) on the host
        beat_schedule_filename=str(settings.var_dir / "celerybeat-schedule"),
        beat_scheduler="workers.celery_app:Scheduler",
        worker_hijack_root_logger=True,
        worker_max_tasks_per_child=10000,
        task_routes={
            "crmhub.sweep": {"queue": settings.control_queue},
            "crmhub.send_alerts": {"queue": settings.control_queue},
            "crmhub.archive": {"queue": settings.control_queue},
            # polls on the control queue: never behind a backlog of deliveries
            "crmhub.dispatch_polls": {"queue": settings.control_queue},
            "crmhub.poll_source": {"queue": settings.control_queue},
        },
        beat_schedule={
            "sweep": {
                "task": "crmhub.sweep",
                "schedule": SWEEP_INTERVAL_SECONDS,
                "options": {"expires": SWEEP_INTERVAL_SECONDS * 5},
            },
            # evaluate the alert rules and send what is due (CRMHUB_ALERT_INTERVAL_SECONDS)
            "send-alerts": {
                "task": "crmhub.send_alerts",
                "schedule": float(settings.alert_interval_seconds),
                "options": {"expires": settings.alert_interval_seconds * 5.0},
            },
            "archive": {
                "task": "crmhub.archive",
                "schedule": ARCHIVE_INTERVAL_SECONDS,
                "options": {"expires": ARCHIVE_INTERVAL_SECONDS * 3},
            },
            # the polling sources that are due (workers/poller.py)
            "dispatch-polls": {
                "task": "crmhub.dispatch_polls",
                "schedule": POLL_DISPATCH_SECONDS,
                "options": {"expires": POLL_DISPATCH_SECONDS * 5},
            },
        },
    )
    if settings.broker_is_amqp:
        app.conf.update(amqp_settings(settings))
    # kombu's Redis transport, with a lost connection's channels saying so
    app.conf.broker_transport = broker.transport_for(broker_url)
    app.conf.crmhub_settings = settings
    if settings.log_format == "json":
        _quiet_banners(app)
        # until Celery sets up its logging (and after, for Python's warnings): JSON lines
        logging.captureWarnings(True)
        handler = logging.StreamHandler()
        logging.getLogger().addHandler(handler)
        use_json_logs("beat" if _is_beat() else "worker")
    return app


def amqp_settings(settings: Settings) -> dict[str, Any]:
    """RabbitMQ as the broker: the hub's queues are quorum queues (replicated, durable,
    declared as core/amqp.py declares them), every publish (beat's tasks; the hints go
    through core/amqp.py) waits for RabbitMQ's confirm, and a message is acknowledged after
    its task (acks_late, as on Redis). Quorum queues have no global QoS: Celery detects the
    queue type and uses per-consumer prefetch (1, as above)."""
    return {
        "task_queues": [amqp_queue(settings.celery_queue), amqp_queue(settings.control_queue)],
        "broker_transport_options": {"confirm_publish": True},
        "worker_detect_quorum_queues": True,
        "task_create_missing_queues": False,
    }


def _quiet_banners(app: Celery) -> None:
    """With JSON logs, the worker's and beat's start-up banners (plain text printed, not
    logged) are left out, as their `--quiet` does: every line of output is then JSON."""
    worker_cls, beat_cls = app.Worker, app.Beat

    class QuietWorker(worker_cls):  # type: ignore[misc,valid-type]
        def on_before_init(self, quiet: bool = False, **kwargs: Any) -> None:
            super().on_before_init(quiet=True, **kwargs)

    class QuietBeat(beat_cls):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "quiet": True})

    app.Worker = QuietWorker
    app.Beat = QuietBeat
    _json_safe_say()


def _json_safe_say() -> None:
    """The worker's shutdown notices ("worker: Warm shutdown") are written straight to the
    terminal from signal handlers, not logged: as JSON lines, written the same way."""
    import celery.apps.worker as program

    plain = program.safe_say
    formatter = JsonFormatter("worker")

    def say(msg: str, f: Any = sys.__stderr__) -> None:
        record = logging.makeLogRecord(
            {"name": "celery.worker", "levelno": logging.WARNING, "levelname": "WARNING",
             "msg": msg}
        )  # fmt: skip
        plain(formatter.format(record), f)

    program.safe_say = say


@celeryd_init.connect
def _sentry_in_worker(**_: object) -> None:
    # before the pool forks: its processes inherit the initialised client
    init_sentry(app.conf.crmhub_settings, "worker")


@beat_init.connect
def _sentry_in_beat(**_: object) -> None:
    init_sentry(app.conf.crmhub_settings, "beat")


@celeryd_init.connect
def _worker_refuses_a_bad_configuration(**_: object) -> None:
    """Check the configuration as `crmhub config check` does before the pool starts: on any
    problem, list them all and exit 2 (otherwise every task would fail on it)."""
    config_or_exit(app.conf.crmhub_settings, "worker")


@beat_init.connect
def _beat_refuses_a_bad_configuration(**_: object) -> None:
    """The beat holds nothing from the YAML, but a hub half-started on a configuration its
    worker refuses is worse than one that says why it does not start: the same check."""
    config_or_exit(app.conf.crmhub_settings, "beat")


class Scheduler(PersistentScheduler):
    """Celery's persistent schedule, kept under the var directory (made when missing)."""

    def setup_schedule(self) -> None:
        Path(self.schedule_filename).parent.mkdir(parents=True, exist_ok=True)
        super().setup_schedule()


@after_setup_logger.connect
@after_setup_task_logger.connect
def _json_logs(logger: logging.Logger, **_: object) -> None:
    """CRMHUB_LOG_FORMAT=json: Celery's handlers (worker, beat, tasks) write JSON lines."""
    settings = app.conf.crmhub_settings
    if settings.log_format == "json":
        use_json_logs("beat" if _is_beat() else "worker", logger)


def _is_beat() -> bool:
    return "beat" in sys.argv[1:5]  # `celery -A workers.celery_app beat ...`


@after_setup_logger.connect
def _quiet_per_task_logs(**_: object) -> None:
    """Celery logs every task received/succeeded, httpx every request, at INFO: at hundreds
    of deliveries a second that is noise that costs CPU. The ledger records every attempt;
    keep warnings and up."""
    for name in ("celery.app.trace", "celery.worker.strategy", "celery.beat", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)


app = make_celery(Settings.from_env())
