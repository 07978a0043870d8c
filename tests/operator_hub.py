"""A hub with dead letters and events for the operator API and dashboard tests (and the
dashboard benchmark): its configuration, operator tokens, and ways to make dead letters."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import fakeredis
import httpx
import redis
from conftest import delete_prefix, hub_ledger, make_settings
from hubtest import STRIPE_SECRET, accept_webhook, stripe_event
from ports import free_port
from processes import Part, wait_until

from app import create_app
from core.archive import open_archive
from core.archive.mover import archive_pass
from core.config import Config, load_config
from core.ledger import Ledger
from core.settings import Settings
from core.vocabulary import AttemptOutcome, DeadCategory

ADMIN_TOKEN = "admin-token-0123456789abcdef"
VIEWER_TOKEN = "viewer-token-0123456789abcdef"
OPS_TOKEN = "ops-token-0123456789abcdefgh"
TOKENS_ENV = {
    "CRMHUB_OPERATOR_TOKEN": ADMIN_TOKEN,
    "CRMHUB_OPERATOR_TOKENS": f"viewer:read_only:{VIEWER_TOKEN},ada:admin:{OPS_TOKEN}",
}

CONFIG = """
sources:
  stripe:
    verify: {scheme: stripe, secret_env: STRIPE_WEBHOOK_SECRET}
    event_id: id
    event_type: type
connections:
  crm: {connector: http, base_url: "http://127.0.0.1:9/api"}
  erp: {connector: http, base_url: "http://127.0.0.1:9/erp"}
mappings:
  customer-to-contact:
    source: stripe
    when: {event_type: [customer.created, customer.updated]}
    connection: crm
    object: contacts
    match: {field: email, from: data.object.email, normalize: email}
    fields:
      email: {from: data.object.email, transform: [email], required: true}
      name: data.object.name
  customer-to-account:
    source: stripe
    when: {event_type: customer.updated}
    connection: erp
    object: accounts
    match: {field: id, from: data.object.id}
    fields: {id: data.object.id}
"""
ENV = {"STRIPE_WEBHOOK_SECRET": STRIPE_SECRET}


class OperatorHub:
    def __init__(self, settings: Settings, config: Config, ledger: Ledger) -> None:
        self.settings = settings
        self.config = config
        self.ledger = ledger
        self.n = 0

    @classmethod
    def build(cls, tmp_path: Path, key_prefix: str, client: Any = None, **env: str) -> OperatorHub:
        path = tmp_path / "crmhub.yaml"
        path.write_text(CONFIG)
        settings = make_settings(
            path,
            key_prefix,
            redis_url="redis://unused",
            **{**ENV, **TOKENS_ENV, "CRMHUB_VAR_DIR": str(tmp_path / "var"), **env},
        )
        config = load_config(path, settings.environ)
        return cls(settings, config, hub_ledger(settings, client or fakeredis.FakeRedis()))

    def app(self) -> Any:
        return create_app(self.settings, config=self.config, redis_client=self.ledger.redis)

    def receive(
        self,
        email: str | None = None,
        type_: str = "customer.updated",
        now: float | None = None,
        **extra: Any,
    ) -> dict[str, str]:
        """Accept one Stripe customer event; {connection: delivery id} (and `event`)."""
        self.n += 1
        body = stripe_event(
            f"evt_stripe_{self.n}",
            type_=type_,
            email=email or f"user{self.n}@example.com",
            id=f"cus_{self.n}",
            **extra,
        )
        [event] = accept_webhook(self.config, self.ledger, body, now=now)
        return {d.connection: d.id for d in event.deliveries} | {"event": event.id}

    def kill(
        self,
        delivery_id: str,
        category: str = "rejected_by_target",
        error: str = "target rejected the record (HTTP 422)",
        now: float | None = None,
    ) -> str:
        now = time.time() if now is None else now
        claim = self.ledger.claim(delivery_id, token="t", now=now, lease_seconds=60)
        assert claim.status == "claimed", claim
        self.ledger.finish(
            delivery_id,
            token="t",
            now=now,
            outcome=AttemptOutcome.DEAD,
            attempt={
                "at": now,
                "duration_ms": 12.5,
                "outcome": "dead",
                "status": 422,
                "error": error,
                "excerpt": '{"message": "bad email", "access_token": "at-SECRET-123"}',
            },
            category=DeadCategory(category),
            error=error,
            dead_letter={"record": {"fields": {"email": "x"}}, "problems": []},
        )
        return delivery_id

    def dead(self, connection: str = "crm", **kwargs: Any) -> str:
        """A fresh dead letter of `connection`."""
        ids = self.receive(kwargs.pop("email", None), now=kwargs.get("now"))
        return self.kill(ids[connection], **kwargs)

    def deliver(self, delivery_id: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        claim = self.ledger.claim(delivery_id, token="t", now=now, lease_seconds=60)
        assert claim.status == "claimed", claim
        self.ledger.finish(
            delivery_id, token="t", now=now, outcome=AttemptOutcome.DELIVERED, attempt={"at": now}
        )

    def archived(self, email: str) -> str:
        """An event of `email`'s, delivered two days ago and moved to the archive since."""
        then = time.time() - 2 * 86400
        ids = self.receive(email=email, now=then)
        for connection in ("crm", "erp"):
            self.deliver(ids[connection], now=then)
        archive = open_archive(self.settings)
        try:
            assert archive_pass(self.ledger, archive, self.settings).moved == 1
        finally:
            archive.close()
        assert self.ledger.raw_event(ids["event"]) == {}
        return ids["event"]

    def state(self, delivery_id: str) -> str:
        return self.ledger.raw_delivery(delivery_id)["state"]


class LiveHub:
    """The Procfile's processes (`parts`: web, worker...) with operator tokens, on a real
    Redis under a key prefix of their own, on a free port; `stop()` stops them and deletes
    the prefix's keys."""

    def __init__(
        self, tmp_path: Path, redis_url: str, config_text: str, parts: tuple[str, ...], **env: str
    ) -> None:

        config = tmp_path / "crmhub.yaml"
        config.write_text(config_text)
        self.prefix = f"crmhub-ops-{uuid.uuid4().hex[:8]}"
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ,
            **ENV,
            **TOKENS_ENV,
            "CRMHUB_CONFIG": str(config),
            "CRMHUB_REDIS_URL": redis_url,
            "CRMHUB_KEY_PREFIX": self.prefix,
            "CRMHUB_VAR_DIR": str(tmp_path),
            "CRMHUB_PORT": str(port),
            "CRMHUB_WEB_WORKERS": "2",
            **env,
        }
        settings = Settings.from_env(self.env)
        self.redis = redis.Redis.from_url(redis_url)
        self.hub = OperatorHub(
            settings, load_config(config, settings.environ), hub_ledger(settings, self.redis)
        )
        self.parts = [Part(name, self.env, tmp_path) for name in parts]

        def ready() -> bool:
            try:
                return httpx.get(f"{self.url}/readyz").status_code == 200
            except httpx.TransportError:
                return False

        try:
            wait_until(ready, timeout=60, message="the web process")
        except AssertionError:
            self.stop()
            raise

    def stop(self) -> None:
        for part in self.parts:
            part.stop()
        delete_prefix(self.redis, self.prefix)
        self.redis.close()
