"""Where a request ends, as app/buffered_worker.py decides it from bytes as they arrive."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.request_framing import RequestFraming, Verdict


def feed(pieces: list[bytes], max_head: int = 4096, max_body: int = 1000) -> list[Verdict]:
    framing = RequestFraming(max_head, max_body)
    return [framing.feed(piece) for piece in pieces]


def request(body: bytes, *, chunks: list[bytes] | None = None) -> bytes:
    if chunks is None:
        return (
            b"POST /webhooks/stripe HTTP/1.1\r\nHost: hub\r\nContent-Length: %d\r\n\r\n" % len(body)
        ) + body
    return (
        b"POST /webhooks/stripe HTTP/1.1\r\nHost: hub\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"%x;ext=1\r\n%s\r\n" % (len(c), c) for c in chunks if c)
        + b"0\r\nX-Trailer: yes\r\n\r\n"
    )


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=300), chunked=st.booleans(), data=st.data())
def test_a_request_is_complete_exactly_when_its_last_byte_arrives(
    body: bytes, chunked: bool, data: st.DataObject
) -> None:
    raw = request(
        body, chunks=[body[: len(body) // 3], body[len(body) // 3 :]] if chunked else None
    )
    cuts = sorted(data.draw(st.sets(st.integers(1, len(raw) - 1), max_size=8)))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    verdicts = feed(pieces)
    assert verdicts[-1] is Verdict.COMPLETE
    assert all(v is Verdict.READING for v in verdicts[:-1])


def test_what_is_known_about_a_request_once_its_head_is_in() -> None:
    framing = RequestFraming(4096, 1000)
    framing.feed(
        b"POST /webhooks/forms?x=1 HTTP/1.1\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"
    )
    assert (framing.path, framing.declared_length, framing.expects_continue) == (
        "/webhooks/forms",
        10,
        True,
    )
    assert framing.started and not framing.body_started


@pytest.mark.parametrize(
    "raw, verdict",
    [
        (b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n", Verdict.COMPLETE),
        (b"\r\nGET / HTTP/1.1\r\n\r\n", Verdict.COMPLETE),
        (b"POST / HTTP/1.1\r\nContent-Length: 1001\r\n\r\n", Verdict.BODY_TOO_LARGE),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n", Verdict.BODY_TOO_LARGE),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 5000, Verdict.HEAD_TOO_LARGE),
        # framing only gunicorn's parser may judge (it refuses these from the bytes it has)
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", Verdict.HAND_OVER),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            Verdict.HAND_OVER,
        ),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", Verdict.HAND_OVER),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", Verdict.HAND_OVER),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", Verdict.HAND_OVER),
        (b"POST / HTTP/1.1\r\n folded: header\r\n\r\n", Verdict.HAND_OVER),
    ],
)
def test_verdicts(raw: bytes, verdict: Verdict) -> None:
    assert feed([raw]) == [verdict]


def test_a_partial_body_and_a_silent_client_are_told_apart() -> None:
    silent, partial = RequestFraming(4096, 1000), RequestFraming(4096, 1000)
    assert partial.feed(b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc") is Verdict.READING
    assert partial.started and partial.body_started and not silent.started
