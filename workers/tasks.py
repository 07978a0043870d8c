"""Celery tasks: thin wrappers over plain functions (workers.delivery, workers.sweeper)."""

from __future__ import annotations

import gc
import logging
import time

from celery import shared_task
from celery.signals import beat_init, worker_process_init, worker_process_shutdown, worker_ready

from connectors.validation import validated_config
from core.errors import CrmhubError
from core.ledger import open_ledger
from core.reload import reload_on_hangup
from core.settings import Settings
from workers import runtime_holder
from workers.archiver import archive, close_archive
from workers.delivery import run_delivery
from workers.poller import dispatch_polls, run_poll
from workers.sweeper import send_alerts, sweep

log = logging.getLogger("crmhub.worker")


@worker_process_init.connect
def _fresh_runtime_after_fork(**_: object) -> None:
    runtime_holder.reset()  # never share sockets across a fork


@worker_process_shutdown.connect
def _close_runtime(**_: object) -> None:
    runtime_holder.reset()


@worker_process_init.connect
@worker_process_shutdown.connect
def _own_archive_connection(**_: object) -> None:
    close_archive()  # never share the archive's connection across a fork either


@worker_ready.connect
@beat_init.connect
def _freeze_long_lived_objects(**_: object) -> None:
    """Take what start-up built out of the cyclic collector's view (gc.freeze).

    Everything imported and configured by now lives as long as the process; left in view, each
    full collection walks all of it again (~45,000-70,000 objects here, 15-40 ms with the GIL
    held on 2 cores, during which the consumer hands out no task). The pool's processes freeze
    theirs once their runtime is built (workers.runtime_holder).
    """
    gc.freeze()


@worker_ready.connect
def _reload_on_hangup_in_the_worker(**_: object) -> None:
    """SIGHUP to the worker's main process: `crmhub reload` from here (validate, announce)
    instead of Celery's re-exec of the whole worker; its processes then load the new
    configuration between tasks. Installed once the worker is ready, after Celery's own."""
    _reload_on_hangup("worker")


@beat_init.connect
def _reload_on_hangup_in_beat(**_: object) -> None:
    """SIGHUP to the beat (which otherwise ends it): the same as to the worker."""
    _reload_on_hangup("beat")


def _reload_on_hangup(kind: str) -> None:
    settings = Settings.from_env()
    reload_on_hangup(
        kind, lambda: validated_config(settings), lambda: open_ledger(settings).generations
    )


@beat_init.connect
def _went_quiet_counts_from_this_start(**_: object) -> None:
    """A source or connection that `expect_*` activity is judged from the later of its last
    activity and the hub's start: the scheduler's start, recorded for the alert evaluator."""
    settings = Settings.from_env()
    log.info(
        "scheduler started: evaluating alert rules every %d s",
        settings.alert_interval_seconds,
    )
    try:
        open_ledger(settings).alerting.mark_hub_started(time.time())
    except CrmhubError as exc:  # Redis away: the evaluator starts the clock itself
        log.warning("could not record the scheduler's start for alerting: %s", exc)


@shared_task(name="crmhub.deliver", ignore_result=True)
def deliver(delivery_id: str) -> str:
    return run_delivery(runtime_holder.get(), delivery_id)


@shared_task(name="crmhub.sweep", ignore_result=True)
def sweep_task() -> dict[str, int]:
    return sweep(runtime_holder.get())


@shared_task(name="crmhub.send_alerts", ignore_result=True)
def send_alerts_task() -> int:
    """Evaluate the alert rules and send due notices (core/alerting)."""
    return send_alerts(runtime_holder.get())


@shared_task(name="crmhub.archive", ignore_result=True)
def archive_task() -> dict[str, int | bool]:
    return archive(runtime_holder.get())


@shared_task(name="crmhub.dispatch_polls", ignore_result=True)
def dispatch_polls_task() -> list[str]:
    """The polling sources that are due, each sent a `crmhub.poll_source` (workers/poller.py)."""
    return dispatch_polls(runtime_holder.get(), lambda name: poll_source_task.delay(name))


@shared_task(name="crmhub.poll_source", ignore_result=True)
def poll_source_task(name: str) -> dict[str, int | str] | None:
    run = run_poll(runtime_holder.get(), name)
    if run is None:
        return None
    return {"pages": run.pages, "recorded": run.recorded, "duplicates": run.duplicates}
