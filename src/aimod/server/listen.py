"""The HTTP listener: uvicorn with the connection limits and timeouts a server facing tenants needs.

uvicorn closes an idle connection only after a response (``timeout_keep_alive``), has no time limit on a
request's headers or body, and no cap on open connections that refuses them at once; a client can hold
thousands of sockets open by sending nothing, or a byte of its headers every few seconds. The protocol here
(uvicorn's h11 protocol with a deadline per phase) adds, from ``[server]``:

* ``header_timeout_s``: the request line and headers must be complete this long after the connection opened,
  or after its previous response ended (an absolute deadline: trickling bytes does not extend it);
* ``body_timeout_s``: the whole body must arrive this long after the headers;
* ``keep_alive_s``: an idle keep-alive connection is closed after this long (uvicorn's own timer);
* ``max_connections``: one connection more is answered ``503`` and closed at once.

A connection past a deadline is closed; the application sees a client disconnect.

Example:
    >>> from aimod.server.config import ServerSettings
    >>> protocol = guarded_protocol(ServerSettings(header_timeout_s=2.0))
    >>> protocol.header_timeout_s
    2.0
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from aimod.server.config import ServerSettings

__all__ = ["guarded_protocol", "uvicorn_config"]

_BUSY_BODY = json.dumps(
    {"error": {"message": "Too many open connections; retry later.", "type": "service_unavailable"}}
).encode()
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a connection cap and deadlines on the headers and the body."""

    max_connections = 1000
    header_timeout_s = 10.0
    body_timeout_s = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase: str | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Refuses the connection over ``max_connections``; otherwise starts the headers' deadline."""
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.write(_BUSY)
            transport.close()
            return
        self._watch()

    def data_received(self, data: bytes) -> None:
        """Uvicorn's handling, then the deadline of the phase the request is now in."""
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        """Uvicorn's keep-alive handling, then the next request's headers' deadline."""
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        """Uvicorn's handling, with no deadline left behind."""
        self._arm(None)
        super().connection_lost(exc)

    def _watch(self) -> None:
        """Arms the deadline of the phase the client is in: sending headers, sending a body, or neither."""
        if self.transport.is_closing():
            return
        state = self.conn.their_state
        self._arm("headers" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None)

    def _arm(self, phase: str | None) -> None:
        if phase == self._phase:
            return
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase = phase
        if phase is not None:
            seconds = self.header_timeout_s if phase == "headers" else self.body_timeout_s
            self._deadline = self.loop.call_later(seconds, self._expire)

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(settings: ServerSettings) -> type[GuardedH11Protocol]:
    """The protocol class with ``[server]``'s connection cap and timeouts (uvicorn builds one per connection)."""
    return type(
        "AimodH11Protocol",
        (GuardedH11Protocol,),
        {
            "max_connections": settings.max_connections,
            "header_timeout_s": settings.header_timeout_s,
            "body_timeout_s": settings.body_timeout_s,
        },
    )


def uvicorn_config(app: Any, settings: ServerSettings, *, host: str | None = None, port: int | None = None) -> Any:
    """The ``uvicorn.Config`` of ``aimod serve``: aimod's logs, no access log, the guarded protocol, the timeouts."""
    return uvicorn.Config(
        app,
        host=host or settings.host,
        port=settings.port if port is None else port,
        http=guarded_protocol(settings),
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_keep_alive=settings.keep_alive_s,  # type: ignore[arg-type]
        timeout_graceful_shutdown=int(settings.graceful_timeout_s),
    )
