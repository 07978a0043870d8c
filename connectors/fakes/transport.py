"""A fake behind an httpx transport: the same ``FakeApp`` the HTTP server runs, called
in-process, so a unit test talks to the real fake with no socket and no subprocess.

    fake = FakeHubSpot(private_app_token="pat-x")
    client = httpx.Client(transport=FakeTransport(fake), base_url="https://api.hubapi.com")

A ``drop`` fault raises what httpx raises when a server closes the connection without an
answer (``httpx.RemoteProtocolError``); a ``latency`` fault sleeps in the calling thread.
"""

from __future__ import annotations

import httpx

from connectors.fakes.app import FakeApp


class FakeTransport(httpx.BaseTransport):
    def __init__(self, app: FakeApp) -> None:
        self.app = app

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path, _, query = request.url.raw_path.decode("ascii").partition("?")
        answer = self.app.handle(request.method, path, query, dict(request.headers), request.read())
        if answer.drop:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        return httpx.Response(
            answer.status,
            headers=list(answer.headers.items()),
            content=answer.content,
            request=request,
        )
