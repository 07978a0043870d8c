"""Where an HTTP/1.1 request ends, decided from its bytes as they arrive (pure: no sockets).

app/buffered_worker.py feeds it what a connection sends until the whole request (head and a
body of Content-Length, or chunked up to its last chunk and trailers) is in memory. It only
frames: anything it does not understand is handed over as it is, for gunicorn's own parser
to accept or refuse from the bytes already read (so the two never disagree about a request
the hub serves).
"""

from __future__ import annotations

import re
from enum import Enum

_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
#: a chunk-size line (with extensions) longer than this is not a chunk-size line
_MAX_CHUNK_LINE = 4096


class Verdict(Enum):
    READING = "reading"  # more bytes are needed
    COMPLETE = "complete"  # the whole request is buffered
    HAND_OVER = "hand_over"  # framing gunicorn's parser must judge (it refuses)
    HEAD_TOO_LARGE = "head_too_large"  # -> 431
    BODY_TOO_LARGE = "body_too_large"  # -> 413


class RequestFraming:
    """One request's bytes so far, and whether they are the whole request.

    `max_head`: the request line and headers; `max_body`: the body (decoded from chunks)."""

    def __init__(self, max_head: int, max_body: int) -> None:
        self.max_head = max_head
        self.max_body = max_body
        self.data = bytearray()
        self.verdict = Verdict.READING
        self.path = ""  # the request target (for counting), once known
        self.declared_length: int | None = None
        self.expects_continue = False  # Expect: 100-continue, body not sent yet
        self._head_end: int | None = None
        self._body_end: int | None = None  # the request is whole at this length
        self._chunk_at: int | None = None  # next chunk-size (or trailer) line, when chunked
        self._chunk_total = 0
        self._in_trailers = False

    def feed(self, data: bytes) -> Verdict:
        if self.verdict is not Verdict.READING:
            self.data += data
            return self.verdict
        searched_to = max(len(self.data) - 3, 0)
        self.data += data
        if self._head_end is None:
            self._find_head(searched_to)
        if self.verdict is Verdict.READING and self._chunk_at is not None:
            self._walk_chunks()
        if (
            self.verdict is Verdict.READING
            and self._body_end is not None
            and len(self.data) >= self._body_end
        ):
            self.verdict = Verdict.COMPLETE
        return self.verdict

    @property
    def started(self) -> bool:
        """Whether any byte of a request arrived (a connection that sent nothing is closed
        silently; one that sent part of a request is told why)."""
        return bool(self.data.strip(b"\r\n"))

    @property
    def body_started(self) -> bool:
        return self._head_end is not None and len(self.data) > self._head_end

    def _find_head(self, searched_to: int) -> None:
        start = len(self.data) - len(self.data.lstrip(b"\r\n"))  # empty lines before it
        end = self.data.find(b"\r\n\r\n", max(searched_to, start))
        if end < 0:
            if len(self.data) - start > self.max_head:
                self.verdict = Verdict.HEAD_TOO_LARGE
            return
        if end - start > self.max_head:
            self.verdict = Verdict.HEAD_TOO_LARGE
            return
        self._head_end = end + 4
        self._parse_head(bytes(self.data[start:end]).split(b"\r\n"))

    def _parse_head(self, lines: list[bytes]) -> None:
        request_line = lines[0].split(b" ")
        if len(request_line) == 3:
            self.path = request_line[1].split(b"?", 1)[0].decode("latin-1")
        lengths: set[bytes] = set()
        codings: list[bytes] = []
        expect = b""
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or name != name.strip() or not name:
                self.verdict = Verdict.HAND_OVER  # folded or broken: gunicorn says
                return
            name = name.lower()
            if name == b"content-length":
                lengths.add(value.strip())
            elif name == b"transfer-encoding":
                codings += [c.strip().lower() for c in value.split(b",")]
            elif name == b"expect":
                expect = value.strip().lower()
        assert self._head_end is not None
        if codings:
            if lengths or codings[-1] != b"chunked":  # ambiguous or unknown framing
                self.verdict = Verdict.HAND_OVER
                return
            self._chunk_at = self._head_end
        elif lengths:
            length = lengths.pop()
            if lengths or not length.isdigit():  # two lengths, or not a number
                self.verdict = Verdict.HAND_OVER
                return
            self.declared_length = int(length)
            if self.declared_length > self.max_body:
                self.verdict = Verdict.BODY_TOO_LARGE
                return
            self._body_end = self._head_end + self.declared_length
        else:
            self._body_end = self._head_end  # no body
        self.expects_continue = (
            expect == b"100-continue"
            and lines[0].endswith(b"/1.1")
            and self._body_end != self._head_end
        )

    def _walk_chunks(self) -> None:
        """Advance over every chunk that is whole; stop at the first that is not."""
        data = self.data
        at = self._chunk_at
        assert at is not None
        while True:
            eol = data.find(b"\r\n", at)
            if eol < 0:
                if len(data) - at > _MAX_CHUNK_LINE:
                    self.verdict = Verdict.HAND_OVER
                break
            if self._in_trailers:
                if eol == at:  # the empty line: the end
                    self._body_end = eol + 2
                    break
                at = eol + 2
                continue
            size_text = bytes(data[at:eol]).split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_text):
                self.verdict = Verdict.HAND_OVER
                break
            size = int(size_text, 16)
            if size == 0:
                self._in_trailers = True
                at = eol + 2
                continue
            if self._chunk_total + size > self.max_body:
                self.verdict = Verdict.BODY_TOO_LARGE
                break
            if len(data) < eol + 2 + size + 2:  # this chunk is not all here yet
                break
            self._chunk_total += size
            at = eol + 2 + size + 2
        self._chunk_at = at
        # tiny chunks or endless trailers: framing may take at most as much again as the body
        if (
            self.verdict is Verdict.READING
            and self._body_end is None
            and at > (self._head_end or 0) + 2 * self.max_body + _MAX_CHUNK_LINE
        ):
            self.verdict = Verdict.BODY_TOO_LARGE
