"""The FastAPI application: the routers, the error handlers, the engine's lifetime and the request log.

Routes (see ``/docs`` on a running server, or docs/server.md):

* ``GET /healthz``: liveness and batching counters (no key needed); :mod:`aimod.server.routes.service`.
* ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions``: OpenAI-compatible, streaming or
  not (language models); :mod:`aimod.server.routes.openai`.
* ``POST /v1/classify``, ``POST /v1/segment``: vision models, the image as base64 JSON or a multipart upload;
  :mod:`aimod.server.routes.vision`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response

from aimod import __version__
from aimod.server.errors import install_handlers
from aimod.server.logs import event
from aimod.server.routes import openai, service, vision
from aimod.server.schemas import ErrorResponse
from aimod.server.served import Served
from aimod.server.tenants import Tenant

__all__ = ["create_app"]


def create_app(served: Served) -> FastAPI:
    """The application for one served model.

    Example:
        >>> # uvicorn.run(create_app(build(config, configured_noise(config))), host="127.0.0.1", port=8000)
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        served.engine.start()
        tiers = sorted(served.tiers)
        event("started", model=served.name, task=served.kind, tiers=tiers, tenants=len(served.config.tenants))
        yield
        summary = await served.engine.stop(served.config.server.graceful_timeout_s)
        stats = served.engine.stats
        event("stopped", batches=stats.batches, rows=stats.rows, **summary.as_fields())

    app = _App(
        title="aimod server",
        version=__version__,
        description="One model, many tenants: owner-set utility tiers, user-chosen focus, keyed noise.",
        lifespan=lifespan,
    )
    app.model_name = served.name
    app.state.served = served
    app.state.started = time.time()
    install_handlers(app)
    app.middleware("http")(_log_request)
    app.include_router(service.router)
    for router in (openai.router, vision.router):
        app.include_router(router, responses=ERROR_RESPONSES)
    return app


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "Invalid request: a malformed body, an unknown or mistyped field, a prompt too long.",
        401: "No API key, or an unknown one.",
        403: "A revoked key, a field that would choose the noise (`sigma`, `tier`, ...), or focus the policy refuses.",
        404: "Another model's name, or the wrong kind of endpoint for this model.",
        413: "A body or an image over the server's limits.",
        415: "A body that is not JSON (or, for images, multipart).",
        503: "The server is shutting down, or has too many open connections.",
    }.items()
}
"""The error answers every ``/v1`` route documents (the body is :class:`~aimod.server.schemas.ErrorResponse`)."""


class _App(FastAPI):
    """FastAPI, whose OpenAPI document names the one model this server answers to."""

    model_name: str = ""

    def openapi(self) -> dict[str, Any]:
        """FastAPI's document, with every request schema's ``model`` an enum of :attr:`model_name`."""
        if self.openapi_schema is not None:
            return self.openapi_schema
        schema = super().openapi()  # FastAPI caches this very dict; it is named in place
        stack: list[Any] = [schema]
        while stack:  # the components' request schemas and the vision routes' inline bodies
            node = stack.pop()
            if isinstance(node, dict):
                properties = node.get("properties")
                if isinstance(properties, dict) and isinstance(properties.get("model"), dict):
                    named = {"type": "string", "enum": [self.model_name], "title": "Model"}
                    optional = "model" not in node.get("required", [])
                    properties["model"] = {"anyOf": [named, {"type": "null"}]} if optional else named
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
        return schema


async def _log_request(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """One ``request`` log event per request: tenant and tier (never the key), status, time, refusal code."""
    request.state.id = uuid.uuid4().hex[:16]
    request.state.tenant = None
    request.state.error = None
    begin = time.perf_counter()
    try:
        response = await call_next(request)
    except Exception:
        event("request_failed", id=request.state.id, path=request.url.path)
        raise
    tenant: Tenant | None = request.state.tenant
    event(
        "request",
        id=request.state.id,
        method=request.method,
        path=request.url.path,
        status=response.status_code,
        ms=round(1000 * (time.perf_counter() - begin), 2),
        tenant=tenant.name if tenant else None,
        tier=tenant.tier if tenant else None,
        error=request.state.error,
    )
    response.headers["x-request-id"] = request.state.id
    return response
