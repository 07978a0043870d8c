"""The baseline of bench/pipeline.py: a bare webhook -> Celery -> HTTP pipeline, no ledger.

`web` is a Flask app (run under the receiver's gunicorn command line) whose
`POST /webhooks/<source>` parses the JSON body and calls `bare_deliver.delay(event, t)`,
t being the time the view received it, then answers 202. `app` is a Celery app with the
hub's broker settings (Redis, acks_late, reject_on_worker_lost, prefetch 1, JSON, ignored
results, kombu `global_keyprefix`); its one task PUTs the fields the hub's mapping writes
(email, name, stripe_customer_id, plus `received_at` for the latency figures) to
`/contacts/<email>` on the target with one keep-alive httpx client per worker process. No
signature check, no dedupe, no ledger, no mapping engine: what is left when those are gone.

Configured from the environment (set by bench/pipeline.py): BENCH_BARE_BROKER_URL,
BENCH_BARE_PREFIX (key prefix and queue name stem), BENCH_BARE_TARGET_URL.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any
from urllib.parse import quote

import httpx
from celery import Celery
from celery.signals import worker_process_init
from flask import Flask, Response, jsonify, request

PREFIX = os.environ.get("BENCH_BARE_PREFIX", "crmhub-bench-bare")
QUEUE = f"{PREFIX}.bare"
TARGET_URL = os.environ.get("BENCH_BARE_TARGET_URL", "http://127.0.0.1:8900")

app = Celery(
    "bench-bare", broker=os.environ.get("BENCH_BARE_BROKER_URL", "redis://127.0.0.1:6379/0")
)
app.conf.update(
    task_default_queue=QUEUE,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    broker_transport_options={"global_keyprefix": f"{PREFIX}:q:", "visibility_timeout": 3600},
    worker_max_tasks_per_child=10000,
)

_client: httpx.Client | None = None


def client() -> httpx.Client:
    """This process's keep-alive client (made after the fork, like the hub's connectors)."""
    global _client
    if _client is None:
        _client = httpx.Client(
            base_url=TARGET_URL, timeout=10, headers={"User-Agent": "crmhub-bench-bare/0.1"}
        )
    return _client


@worker_process_init.connect
def _fresh_client_after_fork(**_: object) -> None:
    global _client
    _client = None


@app.task(name="bench.bare_deliver", ignore_result=True)
def bare_deliver(event: dict[str, Any], received_at: float) -> int:
    customer = event["data"]["object"]
    email = str(customer["email"]).strip().lower()
    fields = {
        "email": email,
        "name": customer.get("name"),
        "stripe_customer_id": customer.get("id"),
        "received_at": received_at,
    }
    response = client().put(f"/contacts/{quote(email, safe='')}", json=fields)
    response.raise_for_status()
    return response.status_code


web = Flask("bench-bare")


@web.post("/webhooks/<source>")
def receive(source: str) -> tuple[Response, int]:
    body = request.get_data()
    received_at = time.time()
    event = json.loads(body)
    bare_deliver.delay(event, received_at)
    return jsonify({"ok": True}), 202
