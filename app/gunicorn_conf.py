"""gunicorn settings shared by `crmhub serve`, the Procfile and the benchmark's baseline."""

import os

bind = f"{os.environ.get('CRMHUB_HOST', '127.0.0.1')}:{os.environ.get('CRMHUB_PORT', '8000')}"
# two processes per core: a request waiting on Redis leaves its core to another process
# rather than to a thread of its own process (which would then hold the GIL)
workers = int(os.environ.get("CRMHUB_WEB_WORKERS") or 2 * (os.cpu_count() or 1))
worker_class = "gthread"          # keep-alive connections from load balancers and senders
threads = int(os.environ.get("CRMHUB_WEB_THREADS", "4"))
keepalive = 5
timeout = 30
graceful_timeout = 20
accesslog = os.environ.get("CRMHUB_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("CRMHUB_LOG_LEVEL", "info").lower()
# gunicorn >= 24 opens a control socket under ~/.gunicorn by default; the hub does not use it,
# and several hubs (or test runs) on one host would fight over the one path.
control_socket_disable = True
