"""gunicorn's threaded worker, reading each request whole before a thread runs it.

Why: gthread hands a connection to one of its few threads (8 per process) as soon as it is
readable, and the thread then reads the headers and body at the client's pace. Clients that
send headers and part of a body and then hold (slowloris, or senders on a bad link) took
every thread: 300 of them kept valid webhooks and /healthz waiting for over a minute.

Here the worker's main loop, which already waits on its sockets, reads every request itself
without blocking (app/request_framing.py says when it is whole) and only then hands it to a
thread, which parses it from memory and never waits for a client. A client that has not sent
its whole request within CRMHUB_REQUEST_READ_TIMEOUT_SECONDS (10 s) of connecting (or, on a
kept-alive connection, of its request's first byte) is answered 408 and cut off; one that
sent nothing is closed silently. A connection that must be closed after its answer lingers
in the loop too (gthread drains it in the main thread for up to 2 s, holding up every other
connection of the process). This is what a buffering proxy (nginx) does in front of gunicorn;
doing it in the worker keeps `crmhub serve`, the Procfile and the compose file one process
and needs no extra package. An async worker (gevent) was the other candidate: it would need
monkey-patching under the receiver's thread-based group commit, and its connections are no
more bounded in time than gthread's.

It subclasses gunicorn's ThreadWorker and relies on its internals (TConn, finish_request,
the poller), hence the pinned gunicorn series in pyproject.toml; tests/integration/
test_slow_clients.py runs it with real sockets. TLS and HTTP/2 prior knowledge (which gunicorn
reads before any request) get gthread's own handling, unbuffered: terminate TLS in front.
"""

from __future__ import annotations

import contextlib
import errno
import json
import selectors
import socket
import struct
import time
from concurrent.futures import Future
from functools import partial
from typing import Any

from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import _DEFER, TConn, ThreadWorker

from app.request_framing import RequestFraming, Verdict
from core.settings import Settings

#: how long a connection closed after its answer may take to close its side (gthread's 2 s)
LINGER_SECONDS = 2.0
LINGER_MAX_BYTES = 64 * 1024
#: the request line and headers, all of them (gunicorn's own limits apply within)
MAX_HEAD_BYTES = 64 * 1024


class BufferedThreadWorker(ThreadWorker):
    def run(self) -> None:
        settings = Settings.from_env()
        self.read_timeout = float(settings.request_read_timeout_seconds)
        config = getattr(self.wsgi, "config", {})
        self.max_body = int(config.get("RECEIVER_LARGEST_BODY_BYTES") or settings.max_body_bytes)
        self.count_answer = config.get("RECEIVER_COUNT_ANSWER")
        # connection -> deadline, in deadline order (each is now + a constant when added)
        self.reading: dict[TConn, float] = {}
        self.lingering: dict[TConn, float] = {}
        super().run()

    # --- reading requests in the main loop ----------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        try:
            client, address = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, client, address, listener.getsockname())  # non-blocking
        if self.cfg.is_ssl or negotiation.prior_knowledge_allowed(self.cfg, address):
            self.enqueue_req(conn)  # gthread's way: the thread does the handshake
            return
        self._guarded(conn, self._start_reading, conn, b"", registered=False)

    def on_client_socket_readable(self, conn: TConn, client: socket.socket) -> None:
        """A kept-alive connection's next request begins: read it here, not in a thread."""
        self.keepalived_conns.remove(conn)
        self._guarded(conn, self._start_reading, conn, b"", registered=True)

    def _start_reading(self, conn: TConn, data: bytes, *, registered: bool) -> None:
        conn.framing = RequestFraming(MAX_HEAD_BYTES, self.max_body)
        conn.continued = False
        conn.deadline = time.monotonic() + self.read_timeout
        self.reading[conn] = conn.deadline
        callback = partial(self._on_readable, conn)
        if registered:
            self.poller.modify(conn.sock, selectors.EVENT_READ, callback)
        else:
            self.poller.register(conn.sock, selectors.EVENT_READ, callback)
        if data:
            self._take(conn, data)
        elif registered:
            self._on_readable(conn, conn.sock)  # it is readable: that is why we are here

    def _guarded(self, conn: TConn, step: Any, *args: Any, **kwargs: Any) -> None:
        """Run one step of the loop's work for `conn`; a failure closes that connection,
        never the loop (a callback that raises would end the worker process)."""
        try:
            step(*args, **kwargs)
        except Exception:
            self.log.exception("closing a connection after an error reading its request")
            self._forget(conn)
            self.lingering.pop(conn, None)
            self._close(conn)

    def _on_readable(self, conn: TConn, _sock: object) -> None:
        self._guarded(conn, self._read, conn)

    def _read(self, conn: TConn) -> None:
        try:
            data = conn.sock.recv(256 * 1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away mid-request
            self._forget(conn)
            self._close(conn)
            return
        self._take(conn, data)

    def _take(self, conn: TConn, data: bytes) -> None:
        framing: RequestFraming = conn.framing
        verdict = framing.feed(data)
        if verdict is Verdict.READING:
            if framing.expects_continue and not conn.continued and not framing.body_started:
                conn.continued = True  # the client waits for this to send it
                self._send_quietly(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
            return
        self._forget(conn)
        if verdict is Verdict.HEAD_TOO_LARGE:
            self._refuse(
                conn,
                431,
                "request_header_fields_too_large",
                f"the request line and headers exceed {MAX_HEAD_BYTES} bytes",
            )
        elif verdict is Verdict.BODY_TOO_LARGE:
            self._refuse(
                conn,
                413,
                "payload_too_large",
                f"the body exceeds {self.max_body} bytes, the most any source of this hub accepts",
            )
        else:  # whole, or for gunicorn to refuse
            conn.sock.setblocking(True)
            if verdict is Verdict.HAND_OVER:
                # gunicorn refuses such a request from the bytes it has; should it read on
                # after all, its reads time out at the request's deadline (SO_RCVTIMEO
                # outlives the setblocking() calls that reset Python's own socket timeout)
                left = max(conn.deadline - time.monotonic(), 1.0)
                conn.sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", int(left), 0)
                )
            conn.data_ready = True  # gthread's wait for a first byte: done
            conn.buffered = bytes(framing.data)
            self.enqueue_req(conn)

    def _forget(self, conn: TConn) -> None:
        self.reading.pop(conn, None)
        self._unregister(conn)

    def handle(self, conn: TConn) -> Any:
        buffered = getattr(conn, "buffered", None)
        if buffered is not None:
            conn.buffered = None
            conn.init()  # the parser, reading from the socket...
            conn.parser.unreader.unread(buffered)  # ...after what the main loop has read
        return super().handle(conn)

    # --- after the answer -----------------------------------------------------------------

    def finish_request(self, conn: TConn, fs: Future[Any]) -> None:
        self._guarded(conn, self._after_answer, conn, fs)

    def _after_answer(self, conn: TConn, fs: Future[Any]) -> None:
        try:
            result = fs.result() if not fs.cancelled() else False
        except Exception:
            result = False
        if result is _DEFER or (result and not self.alive):
            super().finish_request(conn, fs)  # gthread's own paths (shutdown, TLS)
        elif result:
            # keep-alive: a next request may already be buffered (pipelined); it is read
            # like any other, else the connection waits in the poller as gthread has it
            leftover = conn.parser.unreader.take_buffered()
            if leftover:
                conn.sock.setblocking(False)
                self._start_reading(conn, leftover, registered=False)
            else:
                super().finish_request(conn, fs)
        else:
            self._linger(conn)

    def _linger(self, conn: TConn) -> None:
        """Close after the answer without holding up the loop: send FIN, then let the client
        close its side (or read and drop what it still sends) for up to LINGER_SECONDS, so
        the kernel does not reset the connection under the answer's last bytes."""
        try:
            conn.sock.setblocking(False)
            conn.sock.shutdown(socket.SHUT_WR)
            self.poller.register(
                conn.sock, selectors.EVENT_READ, partial(self._on_linger_readable, conn)
            )
        except (OSError, ValueError, KeyError):
            self._close(conn)
            return
        conn.drained = 0
        self.lingering[conn] = time.monotonic() + LINGER_SECONDS

    def _on_linger_readable(self, conn: TConn, _sock: object) -> None:
        self._guarded(conn, self._drain, conn)

    def _drain(self, conn: TConn) -> None:
        try:
            data = conn.sock.recv(64 * 1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        conn.drained += len(data)
        if not data or conn.drained > LINGER_MAX_BYTES:
            self._end_linger(conn)

    def _end_linger(self, conn: TConn) -> None:
        self.lingering.pop(conn, None)
        self._unregister(conn)
        self._close(conn)

    # --- deadlines --------------------------------------------------------------------------

    def murder_pending(self) -> None:
        """Called by gthread's loop about once a second: cut off whoever is past due."""
        super().murder_pending()
        now = time.monotonic()
        for conn, deadline in list(self.reading.items()):
            if deadline > now:
                break
            self._forget(conn)
            if conn.framing.started:
                self._refuse(
                    conn,
                    408,
                    "request_timeout",
                    "the request was not complete "
                    f"within {self.read_timeout:g} s; send it whole, at once",
                )
            else:
                self._close(conn)
        for conn, deadline in list(self.lingering.items()):
            if deadline > now:
                break
            self._end_linger(conn)

    def _refuse(self, conn: TConn, status: int, error: str, detail: str) -> None:
        """Answer from the loop (never blocking: a few hundred bytes into an empty send
        buffer) and close; counted for /metrics like any answer."""
        body = json.dumps({"error": error, "detail": detail}).encode()
        reason = {
            408: "Request Timeout",
            413: "Content Too Large",
            431: "Request Header Fields Too Large",
        }[status]
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        self._send_quietly(conn, head + body)
        if self.count_answer is not None:
            try:
                self.count_answer(conn.framing.path, status)
            except Exception:
                self.log.debug("answer not counted", exc_info=True)
        self.log.info("%s %s from %s: %s", status, reason, conn.client, detail)
        self._linger(conn)

    @staticmethod
    def _send_quietly(conn: TConn, data: bytes) -> None:
        with contextlib.suppress(OSError):  # gone, or not reading: cut off anyway
            conn.sock.send(data)

    def _unregister(self, conn: TConn) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)

    def _close(self, conn: TConn) -> None:
        self.nr_conns -= 1
        conn.close()
