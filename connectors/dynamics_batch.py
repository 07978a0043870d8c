"""The Web API's `$batch` format (OData 4.0 multipart/mixed), both ways: a request of change
sets, and the answer split back into one response per change set.

Source: https://learn.microsoft.com/power-apps/developer/data-platform/webapi/execute-batch-operations-using-web-api
(up to 1,000 requests per batch; a change set is one transaction: all its requests succeed or
all roll back, and its answer is then one error response instead of a response per request;
`Prefer: odata.continue-on-error` goes on after a failed one; answers come in request order),
OData 4.0 Part 1, 11.7 Batch Requests (lines end CRLF; each request an `application/http`
part with `Content-Transfer-Encoding: binary`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

CRLF = "\r\n"
#: a $batch may carry up to 1,000 requests
BATCH_LIMIT = 1000


@dataclass(frozen=True)
class Part:
    """One request of a batch (each goes in a change set of its own)."""

    method: str
    url: str  # the path from the host: /api/data/v9.2/contacts(emailaddress1='a%40b.com')
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def encoded(part: Part) -> bytes:
    """The part's request line and body as UTF-8 (UnicodeEncodeError for text UTF-8 cannot
    carry, a lone surrogate: that record's problem, never the batch's)."""
    body = json.dumps(part.body, ensure_ascii=False) if part.body is not None else ""
    return f"{part.method} {part.url}\n{body}".encode()


def build(parts: Sequence[Part]) -> tuple[str, bytes]:
    """(the Content-Type header, the body) of a $batch putting each part in a change set of
    its own: one record's failure rolls back that record only."""
    batch = f"batch_{uuid.uuid4().hex}"
    lines: list[str] = []
    for index, part in enumerate(parts, start=1):
        changeset = f"changeset_{uuid.uuid4().hex}"
        lines += [f"--{batch}", f"Content-Type: multipart/mixed; boundary={changeset}", ""]
        lines += [
            f"--{changeset}",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            f"Content-ID: {index}",
            "",
            f"{part.method} {part.url} HTTP/1.1",
        ]
        headers = dict(part.headers)
        if part.body is not None:
            headers["Content-Type"] = "application/json"
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append("")
        lines.append(json.dumps(part.body, ensure_ascii=False) if part.body is not None else "")
        lines.append(f"--{changeset}--")
    lines.append(f"--{batch}--")
    lines.append("")
    return f"multipart/mixed; boundary={batch}", CRLF.join(lines).encode("utf-8")


def boundary_of(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "boundary":
            return value.strip().strip('"')
    return None


def split(body: bytes, boundary: str) -> list[bytes]:
    """The parts between `--boundary` lines (the preamble and epilogue dropped)."""
    delimiter = b"--" + boundary.encode("ascii")
    pieces = body.split(delimiter)
    parts = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            break  # the close delimiter
        parts.append(piece.removeprefix(b"\r\n").removeprefix(b"\n"))
    return parts


def head_and_body(raw: bytes) -> tuple[dict[str, str], bytes]:
    """A MIME part's (or an HTTP message's) headers (names lower-cased) and body."""
    text_end = raw.find(b"\r\n\r\n")
    sep = 4
    if text_end < 0:
        text_end, sep = raw.find(b"\n\n"), 2
    if text_end < 0:
        text_end, sep = len(raw), 0
    headers: dict[str, str] = {}
    for line in raw[:text_end].decode("utf-8", "replace").splitlines():
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers, raw[text_end + sep :]


@dataclass(frozen=True)
class Answer:
    """One change set's answer: kept as bytes (an httpx.Response costs more than the rest of
    the parse), made a response only to classify an error."""

    status: int
    headers: Mapping[str, str]  # names lower-cased
    content: bytes
    request: httpx.Request

    @classmethod
    def of(cls, response: httpx.Response) -> Answer:
        headers = {k.lower(): v for k, v in response.headers.items()}
        return cls(response.status_code, headers, response.content, response.request)

    def response(self) -> httpx.Response:
        return httpx.Response(
            self.status, headers=dict(self.headers), content=self.content, request=self.request
        )


def _http(raw: bytes, request: httpx.Request) -> Answer:
    """An `application/http` part's answer."""
    raw = raw.lstrip(b"\r\n")
    status_line, _, rest = raw.partition(b"\n")
    words = status_line.decode("ascii", "replace").split()
    status = int(words[1]) if len(words) > 1 and words[1].isdigit() else 502
    headers, body = head_and_body(rest)
    return Answer(status, headers, body.rstrip(b"\r\n"), request)


def parse(response: httpx.Response) -> list[Answer]:
    """A $batch answer as one answer per change set, in request order (a change set that
    rolled back answers one error response; a succeeded one its request's response)."""
    boundary = boundary_of(response.headers.get("content-type", ""))
    if boundary is None:
        return []
    answers: list[Answer] = []
    for part in split(response.content, boundary):
        headers, body = head_and_body(part)
        kind = headers.get("content-type", "")
        if kind.lower().startswith("multipart/mixed"):
            inner = boundary_of(kind)
            responses = [
                _http(head_and_body(p)[1], response.request)
                for p in (split(body, inner) if inner else [])
            ]
            if responses:
                # one request per change set: its answer (the last, were there more)
                answers.append(responses[-1])
        elif kind.lower().startswith("application/http"):
            answers.append(_http(body, response.request))
    return answers
