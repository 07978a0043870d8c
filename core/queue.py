"""The work queue the ledger publishes to: Celery messages that carry one delivery id each.

Messages are published from inside the ledger's Lua scripts (the LPUSH is part of the same
atomic step that makes the state change), so this module builds, once per process, a message
kombu's Redis transport consumes as it would one pushed by `deliver.apply_async((delivery_id,))`
(Celery task protocol 2, JSON body), with only the fields Celery and kombu read, and two
placeholders the script fills in: @DLV@ (the delivery id) and @TAG@ (a per-Redis counter that
makes task id and delivery tag unique). The body is sent without a `body_encoding` (kombu
then takes it as is) so the script can substitute into it. Nothing in it names the host: a
delivery's message is the same bytes whichever process published it (receiver, worker,
sweeper, on any host), so that a batch can withdraw the messages of the deliveries it took
(core/ledger/claim_batch.lua).

Messages are hints: losing or duplicating one does not break the ledger's invariant (the
sweeper republishes; the worker's claim ignores anything that is not its turn).
"""

from __future__ import annotations

import json

DELIVER_TASK = "crmhub.deliver"
DELIVERY_PLACEHOLDER = "@DLV@"
TAG_PLACEHOLDER = "@TAG@"


class HintQueue:
    """Builds Celery messages for one queue under kombu's `global_keyprefix`."""

    def __init__(self, queue_name: str, keyprefix: str, *, outbox: bool = False) -> None:
        self.queue_name = queue_name
        #: the Redis list kombu's Redis transport consumes (priority 0 lives at the bare name);
        #: with `outbox` (an AMQP broker) a list of the ledger's own that is relayed to the
        #: broker after each script instead (core/ledger/relay.py)
        self.key = f"{keyprefix}{queue_name}" + (".outbox" if outbox else "")
        self.template = self._template(DELIVER_TASK)

    def _template(self, task: str) -> str:
        body = json.dumps([[DELIVERY_PLACEHOLDER], {}, {}], separators=(",", ":"))
        # Only what Celery's worker and kombu's Redis transport read without a default
        # (the message is held in Redis once per waiting delivery: README, "Memory"):
        # Celery (celery/worker/request.py) needs the task's name and an id (the tag, unique
        # per Redis; `ignore_result` comes from the task, `lang` only matters to protocol 1);
        # kombu (kombu/transport/virtual/base.py Message, redis.py QoS) the delivery tag to
        # ack and restore it by, where it was routed (`delivery_info`), and the content type.
        # Left out because kombu's default is what we would write: `content-encoding` (utf-8)
        # and `body_encoding` (absent: the body is taken as is).
        return json.dumps(
            {
                "body": body,
                "content-type": "application/json",
                "headers": {"task": task, "id": TAG_PLACEHOLDER},
                "properties": {
                    "delivery_info": {"exchange": "", "routing_key": self.queue_name},
                    "delivery_tag": TAG_PLACEHOLDER,
                },
            },
            separators=(",", ":"),
        )

    def message(self, delivery_id: str, tag: int | str = 0) -> str:
        """The message as a script would publish it (for tests and one-off publishing)."""
        return self.template.replace(DELIVERY_PLACEHOLDER, delivery_id).replace(
            TAG_PLACEHOLDER, str(tag)
        )
