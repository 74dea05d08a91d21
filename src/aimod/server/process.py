"""The ``aimod serve`` process: uvicorn with a shutdown bounded by ``[server] graceful_timeout_s``.

At SIGTERM (or SIGINT) uvicorn stops accepting connections and waits up to ``graceful_timeout_s`` for the
open ones to finish; :class:`GracefulServer` starts the engine's stop at the same moment, with an earlier
deadline (:func:`engine_deadline_s`), so that rows whose clients have gone are dropped, the queue is answered
until that deadline and cut after it, and every cut request still gets its 503 before uvicorn's own deadline.
The process then exits with a status that says what happened (:data:`EXIT_OK`, :data:`EXIT_CUT`,
:data:`EXIT_NOT_STARTED`) instead of re-raising the signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn

from aimod.server.batching import ShutdownSummary
from aimod.server.engines import Engine

__all__ = ["EXIT_CUT", "EXIT_NOT_STARTED", "EXIT_OK", "GracefulServer", "engine_deadline_s", "serve"]

EXIT_OK = 0
"""Shut down with every accepted request answered (or dropped because its client had gone)."""
EXIT_NOT_STARTED = 3
"""The server never started (the port was taken, say); uvicorn's own status for a failed startup."""
EXIT_CUT = 4
"""Requests were still queued or running at the shutdown deadline; they got 503 ``shutting_down``."""


def engine_deadline_s(graceful_timeout_s: float) -> float:
    """How long after the signal the engine answers rows: 2 s before the graceful timeout, or half of it.

    Example:
        >>> engine_deadline_s(30), engine_deadline_s(3), engine_deadline_s(0)
        (28.0, 1.5, 0.0)
    """
    return max(graceful_timeout_s - 2.0, graceful_timeout_s / 2)


class GracefulServer(uvicorn.Server):
    """A :class:`uvicorn.Server` whose shutdown also stops ``engine`` by a deadline, with a meaningful exit status.

    Args:
        config: The uvicorn config (:func:`aimod.server.listen.uvicorn_config`).
        engine: The served engine (``served.engine``).
        graceful_timeout_s: ``[server] graceful_timeout_s``.
    """

    def __init__(self, config: uvicorn.Config, engine: Engine, graceful_timeout_s: float) -> None:
        super().__init__(config)
        self.engine = engine
        self.deadline_s = engine_deadline_s(graceful_timeout_s)
        self.summary: ShutdownSummary | None = None

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Starts the engine's stop, then uvicorn's shutdown (connections, then the lifespan)."""
        stopping = asyncio.ensure_future(self.engine.stop(self.deadline_s))
        await super().shutdown(sockets)
        self.summary = await stopping

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Uvicorn's signal handling, without re-raising the signal at the end (the exit status says it)."""
        with super().capture_signals():
            yield
            self._captured_signals.clear()

    def exit_status(self) -> int:
        """:data:`EXIT_NOT_STARTED`, :data:`EXIT_CUT` or :data:`EXIT_OK`, once :meth:`run` has returned."""
        if not self.started:
            return EXIT_NOT_STARTED
        if self.summary is not None and self.summary.cut:
            return EXIT_CUT
        return EXIT_OK


def serve(config: uvicorn.Config, engine: Engine, graceful_timeout_s: float) -> int:
    """Runs the server until a signal stops it; returns the exit status."""
    server = GracefulServer(config, engine, graceful_timeout_s)
    server.run()
    return server.exit_status()
