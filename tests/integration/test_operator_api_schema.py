"""schemathesis against the operator API of a live web process (the Procfile's gunicorn, a
real Redis, dead letters and events in the ledger): for every input it generates from
/api/v1/openapi.json, no answer is a 5xx, and every answer (status, content type, body)
matches the document. Its examples per operation are bounded to keep the run short."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from conftest import delete_prefix, hub_ledger
from operator_hub import ADMIN_TOKEN, CONFIG, ENV, TOKENS_ENV, OperatorHub
from processes import Part, wait_until

from core import dead_letters
from core.config import load_config
from core.embedded_redis import free_port
from core.settings import Settings
from core.vocabulary import OperatorAction

pytestmark = pytest.mark.integration
SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")


@pytest.fixture
def live(tmp_path: Path, real_redis_url: str) -> Iterator[tuple[str, OperatorHub]]:
    config = tmp_path / "crmhub.yaml"
    config.write_text(CONFIG)
    prefix = f"crmhub-schema-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {
        **os.environ,
        **ENV,
        **TOKENS_ENV,
        "CRMHUB_CONFIG": str(config),
        "CRMHUB_REDIS_URL": real_redis_url,
        "CRMHUB_KEY_PREFIX": prefix,
        "CRMHUB_VAR_DIR": str(tmp_path),
        "CRMHUB_PORT": str(port),
        "CRMHUB_WEB_WORKERS": "2",
    }
    settings = Settings.from_env(env)
    client = redis.Redis.from_url(real_redis_url)
    hub = OperatorHub(settings, load_config(config, settings.environ), hub_ledger(settings, client))
    dead = []
    for n in range(12):  # something to list, show, replay and edit
        ids = hub.receive(email=f"person{n}@example.com")
        if n % 2:
            dead.append(hub.kill(ids["crm"], category="mapping" if n % 3 else "rejected_by_target"))
    done = dead_letters.start(
        hub.ledger,
        hub.config,
        OperatorAction.REPLAY,
        dead_letters.chosen(hub.ledger, dead[:1], None),
        by="admin",
        via="api",
    )
    # the generated requests name things that exist (else every one would be a 404)
    (tmp_path / "schemathesis.toml").write_text(
        "[parameters]\n"
        f'"path.delivery_id" = "{dead[-1]}"\n'
        f'"path.event_id" = "{hub.ledger.raw_delivery(dead[-1])["event_id"]}"\n'
        f'"path.operation_id" = "{done["id"]}"\n'
        '"path.name" = "crm"\n'
    )
    web = Part("web", env, tmp_path)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/readyz").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, timeout=60, message="the web process")
        yield url, hub
    finally:
        web.stop()
        delete_prefix(client, prefix)
        client.close()


def test_no_generated_input_gets_a_5xx_and_every_answer_matches_the_document(
    live: tuple[str, OperatorHub], tmp_path: Path
) -> None:
    url, _ = live
    result = subprocess.run(
        [
            SCHEMATHESIS,
            "run",
            f"{url}/api/v1/openapi.json",
            "--header",
            f"Authorization: Bearer {ADMIN_TOKEN}",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance,response_headers_conformance",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "25",
            "--seed",
            "20261203",
            # one worker: with two threads, hypothesis describing its strategies runs ast.parse
            # concurrently, which CPython 3.11 before 3.11.8 cannot do (gh-106905: a SystemError)
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--request-timeout",
            "20",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-3000:]
    assert " passed" in result.stdout  # it ran cases, and none failed
