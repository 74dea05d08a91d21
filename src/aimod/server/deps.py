"""Dependencies of the routes: the served state, the caller's tenant, the engine, and the body-size limit.

Tests replace the tenant with ``app.dependency_overrides[authenticated_tenant] = lambda: Tenant(...)``. A
route's dependencies run in the order it lists them, which is the order of the refusals: the key (401/403),
noise fields in the query (403), the kind of model (404), then the body (415, 413, malformed JSON, fields).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute

from aimod.errors import InvalidRequestError, NotFoundError, RequestError, TooLargeError, UnsupportedMediaTypeError
from aimod.server.engines import TextEngine, VisionEngine
from aimod.server.schemas import refuse_noise_fields
from aimod.server.served import Served
from aimod.server.tenants import Tenant

__all__ = [
    "JsonBodyRoute",
    "authenticated_tenant",
    "body_limit",
    "check_model",
    "current_served",
    "content_type",
    "read_json_object",
    "read_limited",
    "tenant",
    "text_engine",
    "vision_engine",
]


def current_served(request: Request) -> Served:
    """What this app serves (``app.state.served``)."""
    served: Served = request.app.state.served
    return served


ServedDep = Annotated[Served, Depends(current_served)]


def authenticated_tenant(request: Request, served: ServedDep) -> Tenant:
    """The tenant of the ``Authorization: Bearer <key>`` header (401 or 403 otherwise); tests override this."""
    return served.tenants.authenticate(request.headers.get("authorization"))


def tenant(request: Request, caller: Annotated[Tenant, Depends(authenticated_tenant)]) -> Tenant:
    """The caller, recorded for the request log; ``?sigma=0`` and the like are refused, never silently ignored."""
    request.state.tenant = caller
    refuse_noise_fields(dict(request.query_params))
    return caller


def text_engine(served: ServedDep) -> TextEngine:
    """The text engine (404 on a server of a vision model)."""
    if served.text is None:
        raise NotFoundError(
            f"This server runs the {served.kind} model {served.name!r}; use /v1/classify or /v1/segment.",
            code="wrong_model_kind",
        )
    return served.text


def vision_engine(kind: str) -> Callable[[Served], VisionEngine]:
    """The dependency giving the vision engine of a ``classify`` or ``segment`` route (404 for another kind)."""

    def engine(served: ServedDep) -> VisionEngine:
        if served.vision is None:
            raise NotFoundError(
                f"This server runs the language model {served.name!r}; use /v1/chat/completions.",
                code="wrong_model_kind",
            )
        if kind == "segment" and served.kind != "segmentation":
            raise NotFoundError(f"{served.name!r} is a classifier; use /v1/classify.", code="wrong_model_kind")
        if kind == "classify" and served.kind != "classification":
            raise NotFoundError(f"{served.name!r} is a segmenter; use /v1/segment.", code="wrong_model_kind")
        return served.vision

    return engine


def check_model(served: Served, name: str | None) -> None:
    """Refuses a request for another model (404)."""
    if name is not None and name != served.name:
        raise NotFoundError(
            f"The model {name!r} does not exist here; this server runs {served.name!r}.",
            param="model",
            code="model_not_found",
        )


async def read_limited(request: Request, max_bytes: int) -> bytes:
    """The raw body, refusing more than ``max_bytes`` (413) without reading it all into memory first."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise TooLargeError(f"The body has {declared} bytes; at most {max_bytes}.", code="body_too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise TooLargeError(f"The body exceeds {max_bytes} bytes.", code="body_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def content_type(request: Request, default: str = "application/json") -> str:
    """The request's media type, lower case, without parameters."""
    return request.headers.get("content-type", default).split(";")[0].strip().lower()


async def read_json_object(request: Request, max_bytes: int) -> tuple[bytes, dict[str, Any]]:
    """A JSON object's bytes and value, or the refusal: 415 for another content type, 413 over ``max_bytes``, 400."""
    kind = content_type(request)
    if kind != "application/json":
        raise UnsupportedMediaTypeError(
            f"Send a JSON body (Content-Type: application/json), got {kind!r}.", code="content_type"
        )
    body = await read_limited(request, max_bytes)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, bad UTF-8, huge numbers, deep nesting
        raise InvalidRequestError(f"Malformed JSON: {str(error)[:200]}.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequestError(f"The body must be a JSON object, got {type(data).__name__}.", code="invalid_json")
    return body, data


class JsonBodyRoute(APIRoute):
    """A route whose JSON body is read here, within ``[server] max_body_bytes``, before FastAPI parses it.

    FastAPI reads a typed body before it runs any dependency; reading it here first keeps an oversized body
    out of memory, and leaves the refusal to :func:`body_limit`, so that it comes after the key's.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, preceded by the limited read of the JSON body."""
        handle = super().get_route_handler()
        if self.body_field is None:  # e.g. GET /v1/models
            return handle

        async def read_then_handle(request: Request) -> Response:
            request.state.body_error = None
            try:
                max_bytes = current_served(request).config.server.max_body_bytes
                request._body, _ = await read_json_object(request, max_bytes)
            except RequestError as error:
                request._body = b""  # FastAPI then sees no body; body_limit raises the refusal
                request.state.body_error = error
            return await handle(request)

        return read_then_handle


def body_limit(request: Request) -> None:
    """Refuses the body :class:`JsonBodyRoute` could not accept (415, 413 or malformed JSON)."""
    error: RequestError | None = getattr(request.state, "body_error", None)
    if error is not None:
        raise error
