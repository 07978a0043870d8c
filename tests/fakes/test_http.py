"""The generic REST CRM fake (connectors/fakes/http.py), run as a real subprocess and spoken to
over loopback with httpx (and, through the `client` fixture, also in-process behind
FakeTransport): the record API, every fault mode, auth, the request log, stats and reset."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from processes import CRMHUB, fake_command, start_fake, stop_fake

from connectors.fakes.http import HttpCrm
from connectors.fakes.transport import FakeTransport

pytestmark = pytest.mark.integration


def start_target(
    *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """Start the target on a free port; return the process and its base URL."""
    return start_fake("http", "demo target listening on", *args, env=env)


stop_target = stop_fake


@contextmanager
def run_target(*args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """The target's base URL for the duration of the block; always stopped afterwards."""
    proc, url = start_target(*args, env=env)
    try:
        yield url
    finally:
        stop_target(proc)


@pytest.fixture(scope="module")
def target_url() -> Iterator[str]:
    with run_target() as url:
        yield url


@pytest.fixture(params=["loopback", "in-process"])
def client(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """The fake over HTTP (its own process), and the same fake in-process behind
    FakeTransport: every test below holds for both."""
    if request.param == "loopback":
        c = httpx.Client(base_url=request.getfixturevalue("target_url"), timeout=10.0)
    else:
        c = httpx.Client(transport=FakeTransport(HttpCrm()), base_url="http://crm.test")
    with c:
        assert c.post("/_control/reset").status_code == 200
        yield c


def add_fault(client: httpx.Client, **spec: Any) -> dict[str, Any]:
    response = client.post("/_control/faults", json=spec)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def log_entries(client: httpx.Client, since: int = 0) -> list[dict[str, Any]]:
    response = client.get("/_control/log", params={"since": since})
    assert response.status_code == 200
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


# --- record API ------------------------------------------------------------------------------


def test_put_creates_with_201_then_updates_with_200_and_merges(client: httpx.Client) -> None:
    created = client.put("/contacts/c1", json={"email": "ada@example.com", "name": "Ada"})
    assert created.status_code == 201
    assert created.json() == {"email": "ada@example.com", "name": "Ada", "key": "c1"}
    assert created.headers["content-type"] == "application/json"
    assert created.http_version == "HTTP/1.1"

    updated = client.put("/contacts/c1", json={"phone": "+441234", "name": "Ada L."})
    assert updated.status_code == 200
    expected = {"email": "ada@example.com", "name": "Ada L.", "phone": "+441234", "key": "c1"}
    assert updated.json() == expected
    assert client.get("/contacts/c1").json() == expected


def test_url_encoded_key_is_stored_decoded(client: httpx.Client) -> None:
    assert client.put("/contacts/alice%40example.com", json={"a": 1}).status_code == 201
    assert client.put("/contacts/a%2Fb%20c", json={"b": 2}).status_code == 201

    got = client.get("/contacts/alice%40example.com")
    assert got.status_code == 200
    assert got.json() == {"a": 1, "key": "alice@example.com"}
    assert client.get("/contacts/a%2Fb%20c").json()["key"] == "a/b c"
    dump = client.get("/_control/records").json()["records"]
    assert {r["key"] for r in dump} == {"alice@example.com", "a/b c"}
    first = log_entries(client)[0]
    assert first["key"] == "alice@example.com"
    assert first["path"] == "/contacts/alice%40example.com"


def test_get_absent_is_404_and_lists_are_per_object(client: httpx.Client) -> None:
    missing = client.get("/contacts/nobody")
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found"}
    assert client.get("/deals").json() == {"records": []}

    client.put("/contacts/1", json={"n": 1})
    client.put("/contacts/2", json={"n": 2})
    client.put("/deals/1", json={"amount": 5})
    records = client.get("/contacts").json()["records"]
    assert sorted(records, key=lambda r: r["key"]) == [{"n": 1, "key": "1"}, {"n": 2, "key": "2"}]
    assert client.get("/deals").json() == {"records": [{"amount": 5, "key": "1"}]}
    assert client.get("/contacts/1/extra").status_code == 404


def test_delete_answers_204(client: httpx.Client) -> None:
    client.put("/contacts/gone", json={"x": 1})
    deleted = client.delete("/contacts/gone")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert client.get("/contacts/gone").status_code == 404
    assert client.delete("/contacts/gone").status_code == 204
    assert client.put("/contacts/gone", json={"y": 2}).status_code == 201


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'"text"', "expected a JSON object"),
        (b"", "a JSON object body is required"),
    ],
)
def test_invalid_body_is_400_with_field_errors(
    client: httpx.Client, content: bytes, message: str
) -> None:
    response = client.put(
        "/contacts/bad", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "validation"
    assert isinstance(body["message"], str)
    assert body["errors"][0]["field"] == "body"
    assert message in body["errors"][0]["message"]
    assert client.get("/contacts/bad").status_code == 404
    assert client.get("/_control/stats").json()["writes"] == 0


def test_concurrent_writes_merge_without_losing_fields(target_url: str) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            with httpx.Client(base_url=target_url, timeout=10.0) as c:
                for i in range(25):
                    r = c.put("/contacts/shared", json={f"w{n}": i})
                    assert r.status_code in (200, 201)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    with httpx.Client(base_url=target_url, timeout=10.0) as c:
        c.post("/_control/reset")
        threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        record = c.get("/contacts/shared").json()
        assert record == {**{f"w{n}": 24 for n in range(8)}, "key": "shared"}
        dump = c.get("/_control/records", params={"object": "contacts"}).json()["records"]
        assert dump == [
            {
                "object": "contacts",
                "key": "shared",
                "fields": {f"w{n}": 24 for n in range(8)},
                "writes": 200,
            }
        ]
        stats = c.get("/_control/stats").json()
        assert stats["writes"] == 200
        assert stats["by_status"] == {"201": 1, "200": 199 + 1}  # 199 updates and the GET


# --- faults ----------------------------------------------------------------------------------


def test_error500_for_the_next_count_requests(client: httpx.Client) -> None:
    answer = add_fault(client, mode="error500", count=2)
    assert answer["added"][0]["mode"] == "error500"
    assert [f["remaining"] for f in answer["faults"]] == [2]

    for _ in range(2):
        failed = client.put("/contacts/c", json={"a": 1})
        assert failed.status_code == 500
        assert failed.json() == {"error": "internal"}
    assert client.get("/contacts/c").status_code == 404  # faulted writes were not applied
    assert client.put("/contacts/c", json={"a": 1}).status_code == 201

    faults = client.get("/_control/faults").json()["faults"]
    assert faults[0]["remaining"] == 0
    assert faults[0]["hits"] == 2
    assert faults[0]["active"] is False


def test_error500_can_answer_another_5xx(client: httpx.Client) -> None:
    add_fault(client, mode="error500", status=503, count=1)
    response = client.get("/contacts/x")
    assert response.status_code == 503
    assert response.json() == {"error": "internal"}


def test_rate_limit_answers_429_with_retry_after(client: httpx.Client) -> None:
    add_fault(client, mode="rate_limit", count=1)
    add_fault(client, mode="rate_limit", count=1, retry_after=7)

    first = client.put("/contacts/r", json={"a": 1})
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "1"
    assert first.json()["error"] == "rate_limited"
    second = client.put("/contacts/r", json={"a": 1})
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "7"
    assert client.put("/contacts/r", json={"a": 1}).status_code == 201


def test_unauthorized_fault_answers_401(client: httpx.Client) -> None:
    add_fault(client, mode="unauthorized", count=1)
    response = client.get("/contacts/x")
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}
    assert client.get("/contacts/x").status_code == 404


def test_validation_fault_answers_400_with_field_errors(client: httpx.Client) -> None:
    add_fault(client, mode="validation", count=1)
    add_fault(client, mode="validation", count=1, field="phone", message="phone is invalid")

    first = client.put("/contacts/v", json={"email": "not-an-email"})
    assert first.status_code == 400
    body = first.json()
    assert body["error"] == "validation"
    assert body["errors"][0]["field"] == "email"
    assert isinstance(body["errors"][0]["message"], str)

    second = client.put("/contacts/v", json={"email": "a@example.com"})
    assert second.json() == {
        "error": "validation",
        "message": "phone is invalid",
        "errors": [{"field": "phone", "message": "phone is invalid"}],
    }
    assert client.get("/contacts/v").status_code == 404


def test_latency_delays_then_handles_normally(client: httpx.Client) -> None:
    add_fault(client, mode="latency", latency_ms=300, count=1)
    started = time.monotonic()
    slow = client.put("/contacts/l", json={"a": 1})
    assert time.monotonic() - started >= 0.3
    assert slow.status_code == 201
    started = time.monotonic()
    assert client.put("/contacts/l", json={"b": 2}).status_code == 200
    assert time.monotonic() - started < 0.3
    assert log_entries(client)[0]["fault"] == "latency"


def test_drop_closes_the_connection_without_an_answer(client: httpx.Client) -> None:
    add_fault(client, mode="drop", count=1)
    with pytest.raises(httpx.TransportError) as caught:
        client.put("/contacts/d", json={"a": 1})
    assert isinstance(caught.value, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError)
    # The write was not applied and the next request (a new connection) works.
    assert client.get("/contacts/d").status_code == 404
    entry = log_entries(client)[0]
    assert entry["status"] is None
    assert entry["fault"] == "drop"
    assert entry["body"] == {"a": 1}
    assert client.get("/_control/stats").json()["by_status"] == {"dropped": 1, "404": 1}


def test_seconds_window_expires(client: httpx.Client) -> None:
    add_fault(client, mode="error500", seconds=0.5)
    assert client.get("/contacts/s").status_code == 500
    assert client.get("/contacts/s").status_code == 500
    assert client.get("/_control/faults").json()["faults"][0]["active"] is True
    time.sleep(0.7)
    assert client.get("/contacts/s").status_code == 404
    assert client.get("/_control/faults").json()["faults"][0]["active"] is False


def test_ratio_with_seed_affects_about_that_share_reproducibly(client: httpx.Client) -> None:
    def run() -> list[int]:
        client.post("/_control/reset")
        add_fault(client, mode="error500", ratio=0.3, seed=1234)
        return [client.get("/contacts/x").status_code for _ in range(200)]

    first = run()
    failed = first.count(500)
    assert 40 <= failed <= 80, failed
    assert first.count(404) == 200 - failed
    assert run() == first  # same seed, same pattern

    client.post("/_control/reset")
    add_fault(client, mode="error500", ratio=0.0)
    assert {client.get("/contacts/x").status_code for _ in range(20)} == {404}


def test_method_and_object_filters(client: httpx.Client) -> None:
    add_fault(client, mode="error500", methods=["put"], objects=["contacts"])
    assert client.get("/contacts/f").status_code == 404
    assert client.put("/deals/f", json={"a": 1}).status_code == 201
    assert client.put("/contacts/f", json={"a": 1}).status_code == 500


def test_faults_stack_and_the_first_active_match_wins(client: httpx.Client) -> None:
    add_fault(client, mode="error500", count=1)
    add_fault(client, mode="rate_limit", count=2)
    add_fault(client, mode="unauthorized", count=1, methods=["DELETE"])
    statuses = [client.put("/contacts/k", json={"a": 1}).status_code for _ in range(4)]
    assert statuses == [500, 429, 429, 201]
    assert client.delete("/contacts/k").status_code == 401
    applied = client.get("/_control/stats").json()["faults_applied"]
    assert applied == {"error500": 1, "rate_limit": 2, "unauthorized": 1}


def test_control_api_is_never_faulted_and_faults_can_be_cleared(client: httpx.Client) -> None:
    add_fault(client, mode="drop")
    add_fault(client, mode="error500")
    assert client.get("/_control/health").json() == {"ok": True}
    assert client.get("/_control/stats").status_code == 200
    assert len(client.get("/_control/faults").json()["faults"]) == 2

    cleared = client.delete("/_control/faults")
    assert cleared.status_code == 200
    assert cleared.json() == {"faults": []}
    assert client.put("/contacts/ok", json={"a": 1}).status_code == 201


def test_a_list_of_fault_specs_is_accepted(client: httpx.Client) -> None:
    response = client.post(
        "/_control/faults", json=[{"mode": "error500", "count": 1}, {"mode": "drop", "count": 1}]
    )
    assert response.status_code == 201
    assert [f["mode"] for f in response.json()["added"]] == ["error500", "drop"]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"mode": "explode"}, "mode"),
        ({"mode": "error500", "count": 0}, "count"),
        ({"mode": "error500", "ratio": 1.5}, "ratio"),
        ({"mode": "error500", "seconds": -1}, "seconds"),
        ({"mode": "error500", "methods": "PUT", "bogus": 1}, "bogus"),
    ],
)
def test_invalid_fault_specs_are_refused(
    client: httpx.Client, spec: dict[str, Any], field: str
) -> None:
    response = client.post("/_control/faults", json=spec)
    assert response.status_code == 400
    assert response.json()["error"] == "validation"
    assert field in {e["field"] for e in response.json()["errors"]}
    assert client.get("/_control/faults").json() == {"faults": []}


# --- log, stats, reset -----------------------------------------------------------------------


def test_log_and_stats(client: httpx.Client) -> None:
    client.put("/contacts/a", json={"name": "A"})
    client.put("/contacts/a", json={"email": "a@example.com"})
    client.get("/contacts/a")
    client.get("/contacts/missing")
    client.put("/contacts/b", content=b"[]")

    entries = log_entries(client)
    assert [e["method"] for e in entries] == ["PUT", "PUT", "GET", "GET", "PUT"]
    assert [e["status"] for e in entries] == [201, 200, 200, 404, 400]
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert entries[0]["body"] == {"name": "A"}
    assert entries[1]["body"] == {"email": "a@example.com"}
    assert entries[2]["body"] is None
    assert entries[4]["body"] == []
    assert {e["object"] for e in entries} == {"contacts"}
    assert [e["key"] for e in entries] == ["a", "a", "a", "missing", "b"]
    assert all(isinstance(e["time"], float) for e in entries)
    assert all(
        set(e) >= {"seq", "time", "method", "path", "object", "key", "status", "body"}
        for e in entries
    )

    later = log_entries(client, since=seqs[2])
    assert [e["seq"] for e in later] == seqs[3:]
    assert log_entries(client, since=seqs[-1]) == []
    limited = client.get("/_control/log", params={"since": 0, "limit": 2}).json()
    assert [e["seq"] for e in limited["entries"]] == seqs[:2]
    assert limited["last_seq"] == seqs[-1]

    stats = client.get("/_control/stats").json()
    assert stats["requests"] == 5
    assert stats["by_status"] == {"201": 1, "200": 2, "404": 1, "400": 1}
    assert stats["records"] == 1
    assert stats["writes"] == 2
    assert client.get("/_control/records").json()["records"][0]["writes"] == 2


def test_reset_clears_records_log_and_faults(client: httpx.Client) -> None:
    client.put("/contacts/a", json={"x": 1})
    add_fault(client, mode="error500", methods=["GET"])
    before = log_entries(client)[-1]["seq"]

    reset = client.post("/_control/reset")
    assert reset.status_code == 200
    assert reset.json()["ok"] is True
    assert client.get("/_control/faults").json() == {"faults": []}
    assert log_entries(client) == []
    stats = client.get("/_control/stats").json()
    assert (stats["requests"], stats["records"], stats["writes"]) == (0, 0, 0)
    assert client.get("/contacts/a").status_code == 404
    # Sequence numbers keep increasing across resets, so old cursors stay valid.
    assert log_entries(client, since=before)[0]["seq"] > before


def test_unknown_control_routes_and_methods(client: httpx.Client) -> None:
    assert client.get("/_control/nope").status_code == 404
    assert client.get("/_control/reset").status_code == 405
    assert client.post("/_control/stats").status_code == 405
    bad = client.get("/_control/log", params={"since": "x"})
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "since"


# --- auth and process lifecycle --------------------------------------------------------------


def _check_token_auth(url: str, token: str) -> None:
    with httpx.Client(base_url=url, timeout=10.0) as c:
        missing = c.put("/contacts/t", json={"a": 1})
        assert missing.status_code == 401
        assert missing.json() == {"error": "unauthorized"}
        wrong = c.get("/contacts/t", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = c.put("/contacts/t", json={"a": 1}, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 201
        # The control API never checks the token.
        assert c.get("/_control/health").status_code == 200
        assert c.get("/_control/stats").json()["by_status"] == {"401": 2, "201": 1}


def test_token_flag_requires_bearer_auth() -> None:
    with run_target("--token", "s3cret") as url:
        _check_token_auth(url, "s3cret")


def test_token_from_environment() -> None:
    with run_target(env={"DEMO_TARGET_TOKEN": "from-env"}) as url:
        _check_token_auth(url, "from-env")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_exits_cleanly() -> None:
    proc, url = start_target()
    try:
        assert httpx.get(f"{url}/_control/health").status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        stop_target(proc)


def test_crmhub_fake_runs_a_connectors_fake_with_its_own_options() -> None:
    """`crmhub fake http ...` is `python -m connectors.fakes.http ...` for whoever installed the
    package (no checkout needed)."""
    proc = subprocess.Popen(
        [CRMHUB, "fake", "http", "--port", "0", "--token", "s3cret"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("demo target listening on http://127.0.0.1:"), line
        _check_token_auth(line.split(" on ", 1)[1].strip(), "s3cret")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        stop_target(proc)


def test_a_port_in_use_is_one_line_and_exit_status_1_not_a_traceback() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        done = subprocess.run(
            [*fake_command("http"), "--port", str(port)], capture_output=True, text=True, timeout=30
        )
    assert done.returncode == 1
    assert done.stderr == (
        f"demo target: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )
