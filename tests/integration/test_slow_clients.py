"""Slow clients cannot starve the receiver (issue 9, item 6): the real receiver (gunicorn with
app/gunicorn_conf.py, as the Procfile runs it) on a real Redis, with raw sockets for clients.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hubtest import RECEIVER_CONFIG, RECEIVER_ENV, STRIPE_SECRET, signed, stripe_event
from ports import free_port
from processes import Part, wait_until
from prometheus_client.parser import text_string_to_metric_families

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("serve")]

HELD = 300
PARTIAL = (
    b"POST /webhooks/stripe HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
    b'Content-Length: 1000\r\n\r\n{"id": "evt_'
)


class Receiver:
    def __init__(self, tmp_path: Path, redis_url: str, **env: str) -> None:
        config = tmp_path / "crmhub.yaml"
        config.write_text(RECEIVER_CONFIG)
        self.prefix = f"crmhub-slow-{uuid.uuid4().hex[:10]}"
        self.port = free_port()
        self.web = Part(
            "web",
            {
                **os.environ,
                **RECEIVER_ENV,
                "CRMHUB_CONFIG": str(config),
                "CRMHUB_REDIS_URL": redis_url,
                "CRMHUB_KEY_PREFIX": self.prefix,
                "CRMHUB_VAR_DIR": str(tmp_path),
                "CRMHUB_PORT": str(self.port),
                **env,
            },
            tmp_path,
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)
        try:
            wait_until(self._ready, timeout=60, message="the receiver's /readyz")
        except AssertionError:
            self.stop()
            raise AssertionError(f"the receiver did not start:\n{self.web.output()}") from None

    def _ready(self) -> bool:
        try:
            return self.http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def exchange(self, data: bytes, *, expect: int = 1) -> list[tuple[int, bytes]]:
        """Send raw bytes on a fresh connection; read `expect` answers (status, body)."""
        with self.connect() as sock:
            sock.sendall(data)
            return read_answers(sock, expect)

    def stop(self) -> None:
        self.http.close()
        self.web.stop()


def read_answers(sock: socket.socket, count: int) -> list[tuple[int, bytes]]:
    buffer = b""
    answers: list[tuple[int, bytes]] = []
    while len(answers) < count:
        head_end = buffer.find(b"\r\n\r\n")
        if head_end >= 0:
            head = buffer[:head_end].decode("latin-1").split("\r\n")
            status = int(head[0].split(" ")[1])
            if status == 100:  # informational: the final answer follows
                buffer = buffer[head_end + 4 :]
                continue
            length = next(
                int(h.split(":")[1]) for h in head if h.lower().startswith("content-length:")
            )
            if len(buffer) >= head_end + 4 + length:
                answers.append((status, buffer[head_end + 4 : head_end + 4 + length]))
                buffer = buffer[head_end + 4 + length :]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed after {answers}, with {buffer!r} left")
        buffer += chunk
    return answers


def raw_webhook(event_id: str, *, extra_headers: bytes = b"", chunked: bool = False) -> bytes:
    body, headers = signed("stripe", stripe_event(event_id), STRIPE_SECRET)
    head = (
        b"POST /webhooks/stripe HTTP/1.1\r\nHost: hub\r\n"
        + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items())
        + extra_headers
    )
    if chunked:
        half = len(body) // 2
        return (
            head
            + b"Transfer-Encoding: chunked\r\n\r\n"
            + b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:half], body[half:]))
            + b"0\r\n\r\n"
        )
    return head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body


@pytest.fixture
def receiver(tmp_path: Path, real_redis: object, real_redis_url: str) -> Iterator[Receiver]:
    hub = Receiver(tmp_path, real_redis_url)
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def quick_receiver(tmp_path: Path, real_redis: object, real_redis_url: str) -> Iterator[Receiver]:
    hub = Receiver(tmp_path, real_redis_url, CRMHUB_REQUEST_READ_TIMEOUT_SECONDS="2")
    try:
        yield hub
    finally:
        hub.stop()


def test_300_slow_clients_neither_block_webhooks_nor_stay_past_10_s(receiver: Receiver) -> None:
    held = []
    try:
        for _ in range(HELD):  # headers and part of a body, then nothing
            sock = receiver.connect()
            sock.sendall(PARTIAL)
            held.append(sock)
        opened = time.monotonic()
        time.sleep(0.5)  # every one of them is in the server's hands

        body, headers = signed("stripe", stripe_event("evt_amid_slow_clients"), STRIPE_SECRET)
        started = time.monotonic()
        answer = receiver.http.post("/webhooks/stripe", content=body, headers=headers)
        assert answer.status_code == 202, answer.text
        assert time.monotonic() - started < 2.0
        started = time.monotonic()
        assert receiver.http.get("/healthz").status_code == 200
        assert time.monotonic() - started < 2.0

        # each held connection gets a 408 saying why, then the server closes it, ~10 s after
        # it connected (the deadline is checked about once a second)
        closed_after: dict[socket.socket, float] = {}
        received: dict[socket.socket, bytes] = {s: b"" for s in held}
        with selectors.DefaultSelector() as selector:
            for sock in held:
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ)
            while len(closed_after) < HELD and time.monotonic() - opened < 25:
                for key, _ in selector.select(timeout=1):
                    sock = key.fileobj  # type: ignore[assignment]
                    try:
                        data = sock.recv(4096)
                    except ConnectionResetError:
                        data = b""
                    received[sock] += data
                    if not data:
                        closed_after[sock] = time.monotonic() - opened
                        selector.unregister(sock)
        assert len(closed_after) == HELD, f"{HELD - len(closed_after)} still open after 25 s"
        assert min(closed_after.values()) >= 8.0 and max(closed_after.values()) <= 15.0, (
            min(closed_after.values()),
            max(closed_after.values()),
        )
        timed_out = [r for r in received.values() if r.startswith(b"HTTP/1.1 408 ")]
        assert len(timed_out) == HELD
        assert b"not complete within 10 s" in timed_out[0]
    finally:
        for sock in held:
            sock.close()


def test_the_read_timeout_is_a_setting_and_bounds_the_whole_request(
    quick_receiver: Receiver,
) -> None:
    """CRMHUB_REQUEST_READ_TIMEOUT_SECONDS=2: a client trickling a byte every 0.3 s (which
    no per-read timeout would stop) is cut off 2 s after it connected; one that never sends
    anything is closed without an answer."""
    with quick_receiver.connect() as trickling, quick_receiver.connect() as silent:
        started = time.monotonic()
        trickling.sendall(PARTIAL)
        answer = b""
        trickling.settimeout(0.3)
        while time.monotonic() - started < 8:
            try:
                trickling.sendall(b"1")
                chunk = trickling.recv(4096)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if not chunk:
                break
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == "request_timeout"
        assert b"within 2 s" in answer
        assert time.monotonic() - started < 2 + 2.5
        silent.settimeout(5)
        assert silent.recv(4096) == b""

    def counted() -> bool:  # the worker's own answers are counted like the app's
        return any(
            s.name == "crmhub_http_responses_total"
            and s.value == 1
            and s.labels == {"route": "webhooks", "status_class": "4xx", "source": "stripe"}
            for family in text_string_to_metric_families(quick_receiver.http.get("/metrics").text)
            for s in family.samples
        )

    wait_until(counted, timeout=10, message="the 408 in /metrics")


def test_requests_read_whole_in_the_worker_keep_http_working(quick_receiver: Receiver) -> None:
    """Chunked bodies, Expect: 100-continue, pipelined and kept-alive requests, and bodies or
    headers over the limits, through the worker that reads requests before a thread does."""
    [(status, _)] = quick_receiver.exchange(raw_webhook("evt_chunked", chunked=True))
    assert status == 202
    with quick_receiver.connect() as sock:  # the client waits for 100 before its body
        request = raw_webhook("evt_continue", extra_headers=b"Expect: 100-continue\r\n")
        head, body = request.split(b"\r\n\r\n", 1)
        sock.sendall(head + b"\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(body)
        assert read_answers(sock, 1)[0][0] == 202
    pipelined = (
        raw_webhook("evt_p1")
        + raw_webhook("evt_p2")
        + b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n"
    )
    assert [s for s, _ in quick_receiver.exchange(pipelined, expect=3)] == [202, 202, 200]
    with quick_receiver.connect() as sock:  # one connection, requests one after another
        for n in range(3):
            sock.sendall(raw_webhook(f"evt_ka{n}"))
            assert read_answers(sock, 1)[0][0] == 202
            time.sleep(0.2)

    [(status, body)] = quick_receiver.exchange(
        b"POST /webhooks/stripe HTTP/1.1\r\nHost: hub\r\nContent-Length: 50000000\r\n\r\n"
    )
    assert status == 413 and json.loads(body)["error"] == "payload_too_large"
    [(status, body)] = quick_receiver.exchange(
        b"GET /healthz HTTP/1.1\r\nHost: hub\r\nX-Pad: " + b"a" * 70_000 + b"\r\n\r\n"
    )
    assert status == 431
    [(status, _)] = quick_receiver.exchange(  # gunicorn's parser still judges framing
        b"POST /webhooks/stripe HTTP/1.1\r\nHost: hub\r\nContent-Length: 5\r\n"
        b"Content-Length: 6\r\n\r\nhello"
    )
    assert status == 400
