"""The HTTP side of every fake (standard library only) and its command line.

A ``ThreadingHTTPServer`` tuned for benchmarks: HTTP/1.1 keep-alive, Content-Length on every
answer, TCP_NODELAY, a deep accept queue, daemon threads, no per-request logging unless
``--verbose``. The handler only reads the request (plain or chunked body), hands it to the
fake's ``FakeApp.handle`` and writes the answer, or drops the connection without a byte when
the answer says so. The command line prints one line on start, ``NAME listening on URL``
(port 0 picks a free port, which that line tells), and SIGTERM or Ctrl-C exit 0; a port it
cannot listen on is one line on stderr and exit status 1, not a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from connectors.fakes.app import FakeApp, Response

MAX_BODY_BYTES = 16 * 1024 * 1024


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: FakeApp, verbose: bool = False) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        self.verbose = verbose
        super().__init__(address, FakeHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall on a reverse lookup.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class FakeHandler(BaseHTTPRequestHandler):
    """Reads a request whole, lets the fake answer it, writes the answer."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    @property
    def fake(self) -> FakeServer:
        assert isinstance(self.server, FakeServer)
        return self.server

    def version_string(self) -> str:
        return f"{self.fake.app.server_version} {self.sys_version}"

    def log_message(self, format: str, *args: Any) -> None:
        if self.fake.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        raw = self._read_body()
        if raw is None:
            return
        parts = urlsplit(self.path)
        headers = {name: value for name, value in self.headers.items()}
        self._send(self.fake.app.handle(self.command, parts.path, parts.query, headers, raw))

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering an unreadable one."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            size = 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    length = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    self._refuse("malformed chunked body")
                    return None
                if length == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                size += length
                if size > MAX_BODY_BYTES:
                    self._refuse("body too large", 413)
                    return None
                chunks.append(self.rfile.read(length))
                self.rfile.readline(1024)
        length_header = self.headers.get("Content-Length")
        if not length_header:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            length = -1
        if length < 0:
            self._refuse("invalid Content-Length")
            return None
        if length > MAX_BODY_BYTES:
            self._refuse("body too large", 413)
            return None
        return self.rfile.read(length) if length else b""

    def _refuse(self, message: str, status: int = 400) -> None:
        self.close_connection = True
        self._send(self.fake.app.refuse(message, status))

    def _send(self, response: Response) -> None:
        if response.drop:
            self._drop()
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if response.content:
            self.wfile.write(response.content)

    def _drop(self) -> None:
        """Close the connection without a single byte of answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        self.connection.close()


# --- command line -----------------------------------------------------------------------------


def cli_parser(description: str, port: int, prog: str | None = None) -> argparse.ArgumentParser:
    """A parser with --host, --port (0 picks a free one) and --verbose."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default="127.0.0.1", help="bind address [127.0.0.1]")
    parser.add_argument("--port", type=int, default=port, help=f"port; 0 picks a free one [{port}]")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser


def listen(app: FakeApp, host: str, port: int, verbose: bool = False) -> FakeServer:
    """The fake's server bound to host:port; a port it cannot have ends the program with one
    line saying so (exit status 1)."""
    try:
        return FakeServer((host, port), app, verbose)
    except (OSError, OverflowError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SystemExit(f"{app.name}: cannot listen on {host}:{port}: {reason}") from None


def base_url(server: FakeServer) -> str:
    """``http://HOST:PORT`` of the bound server (the port chosen for port 0)."""
    host, port = str(server.server_address[0]), int(server.server_address[1])
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve(server: FakeServer) -> int:
    """Print ``NAME listening on URL`` and serve until SIGTERM or Ctrl-C; exit status 0."""

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"{server.app.name} listening on {base_url(server)}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
