"""Whether the receiver's address is free to listen on.

The receiver's workers each bind a socket of their own with SO_REUSEPORT (app/gunicorn_conf.py),
so starting a second server on a port in use does not fail by itself: it quietly takes a share
of the first one's connections. A plain bind (no SO_REUSEPORT) fails while any socket listens
there, whoever owns it, which is the check both `crmhub serve` and gunicorn's start make.
"""

from __future__ import annotations

import socket


def address_in_use(host: str, port: int, choose: str = "--port / CRMHUB_PORT") -> str | None:
    """Why nothing can listen on host:port (a sentence for the operator, naming `choose`, the
    setting that moves it), or None if it can."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
        try:
            probe.bind((host, port))
        except OSError as exc:
            return (
                f"cannot listen on {host}:{port}: {exc.strerror} (is another server "
                f"running there? choose another port with {choose})"
            )
    return None
