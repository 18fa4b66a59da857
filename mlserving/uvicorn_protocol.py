"""uvicorn's httptools protocol with two deadlines it lacks, so that idle
or slow clients cannot pile up connections (uvicorn --http
mlserving.uvicorn_protocol:HttpProtocol, in the Procfile):

- a new connection that sends nothing within the keep-alive timeout is
  closed (uvicorn arms that timeout only after a response);
- a request whose headers have not all arrived HEADER_TIMEOUT seconds after
  its first byte is closed (headers sent a byte at a time).

Bodies have their own deadline in the front (mlserving/front.py). This
module is imported by uvicorn before the application, so it imports no
Django model.
"""

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mlserving.conf import app_settings


class HttpProtocol(HttpToolsProtocol):
    _deadline: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm(self.timeout_keep_alive)

    def on_message_begin(self) -> None:
        self._arm(app_settings.HEADER_TIMEOUT)
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        # Before the parent's, which returns early for a websocket upgrade
        # (the connection then belongs to another protocol).
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)
