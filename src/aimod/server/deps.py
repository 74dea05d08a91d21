"""Dependencies of the routes: the served state, the caller's tenant, the engine, and the body-size limit.

Tests replace the tenant with ``app.dependency_overrides[authenticated_tenant] = lambda: Tenant(...)``. A
route's dependencies run in the order it lists them, which is the order of the refusals: the key (401/403),
noise fields in the query (403), the kind of model (404), then the body (415, 413, malformed JSON, fields).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from aimod.errors import InvalidRequestError, NotFoundError, RequestError, TooLargeError, UnsupportedMediaTypeError
from aimod.server.engines import TextEngine, VisionEngine
from aimod.server.schemas import refuse_noise_fields, refuse_unencodable
from aimod.server.served import Served
from aimod.server.tenants import Tenant

__all__ = [
    "JsonBodyRoute",
    "authenticated_tenant",
    "body_limit",
    "check_model",
    "current_served",
    "content_type",
    "limited_stream",
    "parse_json_object",
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


_bearer = HTTPBearer(auto_error=False, description="An API key from the model owner (`aimod new-key`).")


def authenticated_tenant(
    request: Request,
    served: ServedDep,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Tenant:
    """The tenant of the ``Authorization: Bearer <key>`` header (401 or 403 otherwise); tests override this.

    The ``HTTPBearer`` dependency only declares the scheme in the OpenAPI document; the header is checked here.
    """
    return served.tenants.authenticate(request.headers.get("authorization"))


def tenant(request: Request, caller: Annotated[Tenant, Depends(authenticated_tenant)]) -> Tenant:
    """The caller, recorded for the request log; a query string is refused, never silently ignored.

    ``?sigma=0`` (any case) gets the noise fields' 403; any other parameter a 400, as no route takes one.
    """
    request.state.tenant = caller
    query = dict(request.query_params)
    refuse_noise_fields(query)
    if query:
        name = sorted(query)[0]
        raise InvalidRequestError(
            f"`{name}` is not a query parameter of this route; send the request's fields in its body.",
            param=name,
            code="invalid_field",
        )
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


async def limited_stream(request: Request, max_bytes: int) -> AsyncGenerator[bytes, None]:
    """The body's chunks as they arrive, refusing (413) as soon as more than ``max_bytes`` came.

    A declared ``Content-Length`` over the limit is refused before anything is read; a chunked body is
    counted as it arrives, so nothing past the limit is ever read.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise TooLargeError(f"The body has {declared} bytes; at most {max_bytes}.", code="body_too_large")
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise TooLargeError(f"The body exceeds {max_bytes} bytes.", code="body_too_large")
        yield chunk


async def read_limited(request: Request, max_bytes: int) -> bytes:
    """The raw body, refusing more than ``max_bytes`` (413) without reading past the limit."""
    return b"".join([chunk async for chunk in limited_stream(request, max_bytes)])


def content_type(request: Request, default: str = "application/json") -> str:
    """The request's media type, lower case, without parameters."""
    return request.headers.get("content-type", default).split(";")[0].strip().lower()


async def read_json_object(
    request: Request, max_bytes: int, max_separators: int | None = None
) -> tuple[bytes, dict[str, Any]]:
    """A JSON object's bytes and value, or the refusal: 415 for another content type, 413 over ``max_bytes``, 400.

    The body is counted as it arrives (a chunked body without Content-Length too); it is parsed and checked
    in a worker thread (:func:`parse_json_object`), so a large body never holds up the event loop. A worker
    thread still holds the interpreter while it parses, and parsing a million small values takes a second, so
    a body with more than ``max_separators`` ``,`` and ``:`` bytes (an upper bound on its values) is refused
    before it is parsed (:func:`check_separators`).
    """
    kind = content_type(request)
    if kind != "application/json":
        raise UnsupportedMediaTypeError(
            f"Send a JSON body (Content-Type: application/json), got {kind!r}.", code="content_type"
        )
    body = await read_limited(request, max_bytes)
    if max_separators is not None:
        check_separators(body, max_separators)
    return body, await run_in_threadpool(parse_json_object, body)


def check_separators(body: bytes, limit: int) -> None:
    """Refuses (400) a JSON body with more than ``limit`` ``,`` and ``:`` bytes, counted in a few milliseconds.

    Every member of an object and every item of an array after the first takes one, so their count bounds the
    values to parse; a base64 image has none.

    Example:
        >>> check_separators(b'{"image": "iVBORw0K", "top_k": 3}', limit=16)
        >>> check_separators(b'{"focus": {"a": 1, "b": 2}}', limit=3)
        Traceback (most recent call last):
        ...
        aimod.errors.InvalidRequestError: The body has 4 JSON separators ...; a request here has at most 3. Send ...
    """
    count = body.count(b",") + body.count(b":")
    if count > limit:
        raise InvalidRequestError(
            f"The body has {count} JSON separators (`,` and `:`); a request here has at most {limit}. "
            "Send the image as one base64 string and at most the documented focus entries.",
            code="too_many_values",
        )


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The JSON object of a body, checked: no noise field anywhere (403), only Unicode text, no NaN (400).

    Raises:
        TierLimitError: For a field that would choose the noise.
        InvalidRequestError: For malformed JSON, a value that is not an object, ``NaN`` or ``Infinity``, or a
            lone surrogate in a string.

    Example:
        >>> parse_json_object(b'{"prompt": "Hi", "max_tokens": 4}')
        {'prompt': 'Hi', 'max_tokens': 4}
    """
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, bad UTF-8, huge numbers, deep nesting
        raise InvalidRequestError(f"Malformed JSON: {str(error)[:200]}.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequestError(f"The body must be a JSON object, got {type(data).__name__}.", code="invalid_json")
    refuse_noise_fields(data)
    refuse_unencodable(data)
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; send a finite number")


class JsonBodyRoute(APIRoute):
    """A route whose JSON body is read here, within ``[server] max_text_body_bytes``, before FastAPI sees it.

    FastAPI reads a typed body before it runs any dependency; reading it here first keeps an oversized body
    out of memory and parses it off the event loop (FastAPI then takes the parsed value), and leaves the
    refusal to :func:`body_limit`, so that it comes after the key's.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, preceded by the limited read of the JSON body."""
        handle = super().get_route_handler()
        if self.body_field is None:  # e.g. GET /v1/models
            return handle

        async def read_then_handle(request: Request) -> Response:
            request.state.body_error = None
            try:
                max_bytes = current_served(request).config.server.max_text_body_bytes
                request._body, request._json = await read_json_object(request, max_bytes)
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
