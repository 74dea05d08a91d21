"""A client hanging up: the answer it waits for is given up, so its row is dropped instead of computed.

A non-streaming route awaits its engine's answer through :func:`unless_gone`, which also listens for the
ASGI ``http.disconnect`` message; when it comes first, the engine's work is cancelled (a queued row is then
skipped by the batcher, a running text row ends at its next step) and :class:`~starlette.requests.ClientDisconnect`
is raised, which the app logs as one ``request`` line with status 499.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import ClientDisconnect, Request

__all__ = ["unless_gone"]

R = TypeVar("R")


async def unless_gone(request: Request, work: Awaitable[R], gone: threading.Event | None = None) -> R:
    """The result of ``work``, unless the client hangs up first (then ``gone`` is set and the work cancelled).

    Call it once the request's body has been read: it then waits on the ASGI ``receive`` for the disconnect.

    Raises:
        ClientDisconnect: When the client hung up before the answer was ready.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():  # the client left, or this handler was cancelled (the server's own deadline)
            if gone is not None:
                gone.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        raise ClientDisconnect()
    return task.result()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
