"""The work queue the ledger publishes to: Celery messages that carry one delivery id each.

The receiver and the sweeper publish from inside the ledger's Lua scripts (the LPUSH is part of
the same atomic step that records the state), so a message is built here as the exact bytes
kombu's Redis transport would push for `deliver.apply_async((delivery_id,))`: Celery task
protocol 2, JSON body, base64 body encoding. Messages are hints: losing or duplicating one
does not break the ledger's invariant (the sweeper republishes; the worker's claim dedupes).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid

DELIVER_TASK = "crmhub.deliver"
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
_ORIGIN = f"crmhub@{socket.gethostname()}"


class HintQueue:
    """Builds Celery messages for one queue under kombu's `global_keyprefix`."""

    def __init__(self, queue_name: str, keyprefix: str) -> None:
        self.queue_name = queue_name
        #: the Redis list kombu's Redis transport consumes (priority 0 lives at the bare name)
        self.key = f"{keyprefix}{queue_name}"

    def message(self, delivery_id: str, task: str = DELIVER_TASK) -> str:
        task_id = str(uuid.UUID(bytes=os.urandom(16), version=4))
        body = json.dumps([[delivery_id], {}, _EMBED], separators=(",", ":"))
        return json.dumps({
            "body": base64.b64encode(body.encode()).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {
                "lang": "py", "task": task, "id": task_id, "shadow": None, "eta": None,
                "expires": None, "group": None, "group_index": None, "retries": 0,
                "timelimit": [None, None], "root_id": task_id, "parent_id": None,
                "argsrepr": repr((delivery_id,)), "kwargsrepr": "{}", "origin": _ORIGIN,
                "ignore_result": True, "stamped_headers": None, "stamps": {},
            },
            "properties": {
                "correlation_id": task_id, "reply_to": "", "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": self.queue_name},
                "priority": 0, "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
            },
        }, separators=(",", ":"))
