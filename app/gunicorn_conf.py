"""gunicorn settings shared by `crmhub serve`, the Procfile and the benchmark's baseline."""

import gc
import os
import sys

bind = f"{os.environ.get('CRMHUB_HOST', '127.0.0.1')}:{os.environ.get('CRMHUB_PORT', '8000')}"
# two processes per core: a request waiting on Redis leaves its core to another process
# rather than to a thread of its own process (which would then hold the GIL)
workers = int(os.environ.get("CRMHUB_WEB_WORKERS") or 2 * (os.cpu_count() or 1))
# gthread (threads, keep-alive connections from load balancers and senders), but each request
# is read whole in the worker's main loop before a thread runs it, and a client slower than
# CRMHUB_REQUEST_READ_TIMEOUT_SECONDS is cut off: slow clients cannot take the threads (why
# this and not a proxy or gevent: app/buffered_worker.py)
worker_class = "app.buffered_worker.BufferedThreadWorker"
# Requests of one process that wait on Redis together are accepted together (group commit:
# one script call for all of them), so more of them in flight means fewer, larger calls.
# Measured with bench/receiver.py on 2 cores: 4 threads ~2,900 req/s, 8 threads ~3,200 (16:
# no better); the bare Flask baseline is the same with either.
threads = int(os.environ.get("CRMHUB_WEB_THREADS") or 8)
keepalive = 5
# Each worker listens on a socket of its own (SO_REUSEPORT) and the kernel spreads new
# connections across them. On one shared socket, a burst of new keep-alive connections (a load
# balancer's pool, a sender's retry storm) lands mostly on whichever worker wakes first: seen
# here, 29 of 32 connections on one of four workers, its core saturated while the others idled.
reuse_port = True
timeout = 30
graceful_timeout = 20
# one line per request to this file (`-`: standard output); off by default: at webhook rates
# the ledger records every event, the access log adds little but CPU
accesslog = os.environ.get("CRMHUB_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("CRMHUB_LOG_LEVEL", "info").lower()
# CRMHUB_LOG_FORMAT=json: one JSON object per line (core/logs.py), gunicorn's lines included
if (os.environ.get("CRMHUB_LOG_FORMAT") or "").strip().lower() == "json":
    from core.logs import gunicorn_logconfig

    logconfig_dict = gunicorn_logconfig("web")
# gunicorn >= 24 opens a control socket under ~/.gunicorn by default; the hub does not use it,
# and several hubs (or test runs) on one host would fight over the one path.
control_socket_disable = True


def on_starting(server):
    """Refuse an address something already listens on (see app/listen.py for why), then a
    configuration `crmhub config check` refuses (every problem listed once, exit 2, instead
    of each worker failing to boot with a traceback)."""
    from app.listen import address_in_use
    from connectors.validation import config_or_exit
    from core.settings import Settings

    for address in server.cfg.address:
        if isinstance(address, tuple):  # a unix socket path: gunicorn checks those itself
            problem = address_in_use(address[0], address[1])
            if problem:
                server.log.error(problem)
                sys.exit(1)
    config_or_exit(Settings.from_env(), "web")


def when_ready(server):
    """SIGHUP to gunicorn's master: `crmhub reload` from here (validate, then announce; every
    receiver and worker process loads the new configuration in place, core/reload.py),
    instead of gunicorn's own reload, which would start new workers on a configuration nobody
    checked (a bad one would stop the receiver)."""
    from connectors.validation import validated_config
    from core.ledger import open_ledger
    from core.reload import reload_now
    from core.settings import Settings

    settings = Settings.from_env()

    def handle_hup():
        reload_now(
            "web", lambda: validated_config(settings), lambda: open_ledger(settings).generations
        )

    server.handle_hup = handle_hup  # the master's loop calls handle_<signal>()


def post_worker_init(worker):
    """The app is loaded and lives as long as the process: take its objects out of the cyclic
    collector's view (gc.freeze), so a full collection walks only what requests create. Measured
    in bench/pipeline.py's web workers: full collections went from 13-40 ms (~50,000 objects)
    to ~5 ms (~17,000), each a stall with the GIL held for every request of that process."""
    gc.freeze()
