"""schemathesis against the operator API of a live web process (the Procfile's gunicorn, a
real Redis, dead letters and events in the ledger): for every input it generates from
/api/v1/openapi.json, no answer is a 5xx, and every answer (status, content type, body)
matches the document. Its examples per operation are bounded to keep the run short."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_hub import ADMIN_TOKEN, CONFIG, LiveHub, OperatorHub

from core import dead_letters
from core.vocabulary import OperatorAction

pytestmark = pytest.mark.integration
SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")


@pytest.fixture
def live(tmp_path: Path, real_redis_url: str) -> Iterator[tuple[str, OperatorHub]]:
    running = LiveHub(tmp_path, real_redis_url, CONFIG, ("web",))
    hub = running.hub
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
    try:
        yield running.url, hub
    finally:
        running.stop()


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
