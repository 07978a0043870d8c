"""The `$batch` wire format as the fake Dataverse reads and writes it (written apart from the
connector's own codec, so one's mistake cannot hide the other's).

Source: https://learn.microsoft.com/power-apps/developer/data-platform/webapi/execute-batch-operations-using-web-api
(request and response examples: `--batch_...` parts, change sets as nested
`multipart/mixed; boundary=changeset_...`, each request an `application/http` part with
`Content-Transfer-Encoding: binary` and an optional `Content-ID`; the answer's parts
`--batchresponse_...` / `--changesetresponse_...`; a change set that fails answers one
`application/http` error part in place of its responses), OData 4.0 Part 1, 11.7.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any


@dataclass
class InnerRequest:
    method: str
    url: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    content_id: str | None = None


@dataclass
class Group:
    """A change set (several requests, one transaction) or a lone request."""

    changeset: bool
    requests: list[InnerRequest] = field(default_factory=list)


@dataclass
class InnerResponse:
    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_id: str | None = None


class MalformedBatch(ValueError):
    """A body that is no multipart $batch."""


def boundary(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "boundary":
            return value.strip().strip('"')
    return None


def _parts(body: bytes, delimiter: str) -> list[bytes]:
    pieces = body.split(b"--" + delimiter.encode("ascii"))
    if len(pieces) < 2:
        raise MalformedBatch(f"no part starts with --{delimiter}")
    out: list[bytes] = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            return out
        out.append(piece[2:] if piece.startswith(b"\r\n") else piece.lstrip(b"\n"))
    raise MalformedBatch(f"no closing --{delimiter}--")


def _head(raw: bytes) -> tuple[dict[str, str], bytes]:
    end, sep = raw.find(b"\r\n\r\n"), 4
    if end < 0:
        end, sep = raw.find(b"\n\n"), 2
    if end < 0:
        end, sep = len(raw), 0
    headers = {}
    for line in raw[:end].decode("utf-8", "replace").splitlines():
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers, raw[end + sep :]


def _request(raw: bytes) -> InnerRequest:
    part_headers, http = _head(raw)
    if not part_headers.get("content-type", "").lower().startswith("application/http"):
        raise MalformedBatch("a request part must be Content-Type: application/http")
    http = http.lstrip(b"\r\n")
    line, _, rest = http.partition(b"\n")
    words = line.decode("utf-8", "replace").strip().split(" ")
    if len(words) != 3 or not words[2].startswith("HTTP/"):
        raise MalformedBatch(f"bad request line {line[:120]!r}")
    headers, body = _head(rest)
    return InnerRequest(
        words[0].upper(), words[1], headers, body.rstrip(b"\r\n"), part_headers.get("content-id")
    )


def parse(content_type: str, body: bytes) -> list[Group]:
    """The batch's change sets and lone requests, in order."""
    outer = boundary(content_type)
    if not content_type.lower().startswith("multipart/mixed") or outer is None:
        raise MalformedBatch("Content-Type must be multipart/mixed with a boundary")
    groups = []
    for part in _parts(body, outer):
        headers, inner = _head(part)
        kind = headers.get("content-type", "")
        if kind.lower().startswith("multipart/mixed"):
            changeset = boundary(kind)
            if changeset is None:
                raise MalformedBatch("a change set needs a boundary")
            groups.append(Group(True, [_request(p) for p in _parts(inner, changeset)]))
        else:
            groups.append(Group(False, [_request(part)]))
    return groups


def _http(response: InnerResponse) -> list[str]:
    lines = [
        "Content-Type: application/http",
        "Content-Transfer-Encoding: binary",
    ]
    if response.content_id:
        lines.append(f"Content-ID: {response.content_id}")
    lines += ["", f"HTTP/1.1 {response.status} {HTTPStatus(response.status).phrase}"]
    headers = dict(response.headers)
    if response.payload is not None:
        headers["Content-Type"] = "application/json; odata.metadata=minimal"
    headers["OData-Version"] = "4.0"
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append("")
    lines.append(json.dumps(response.payload) if response.payload is not None else "")
    return lines


def build(answers: list[tuple[bool, list[InnerResponse]]]) -> tuple[str, bytes]:
    """(Content-Type, body) of a $batch answer: per group, (succeeded change set, its
    responses) or (False, [the one error / the lone request's answer])."""
    outer = f"batchresponse_{uuid.uuid4()}"
    lines: list[str] = []
    for as_changeset, responses in answers:
        lines.append(f"--{outer}")
        if as_changeset:
            inner = f"changesetresponse_{uuid.uuid4()}"
            lines += [f"Content-Type: multipart/mixed; boundary={inner}", ""]
            for response in responses:
                lines.append(f"--{inner}")
                lines += _http(response)
            lines.append(f"--{inner}--")
        else:
            lines += _http(responses[0])
    lines += [f"--{outer}--", ""]
    return f"multipart/mixed; boundary={outer}", "\r\n".join(lines).encode("utf-8")
