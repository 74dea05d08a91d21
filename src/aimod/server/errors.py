"""The one place that knows HTTP: aimod errors -> OpenAI-shaped JSON with their status code.

The body is ``{"error": {"message", "type", "param", "code"}}``.

Services raise :class:`~aimod.errors.RequestError` subclasses (and never choose a status code); the handlers
installed by :func:`install_handlers` give each its status from :data:`STATUS` and turn FastAPI's own
validation and 404/405 errors into the same JSON, so the ``openai`` client raises its usual
``BadRequestError``, ``AuthenticationError``, ``PermissionDeniedError`` or ``NotFoundError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from aimod.errors import (
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RequestError,
    ShuttingDownError,
    TooLargeError,
    UnsupportedMediaTypeError,
)
from aimod.server.schemas import invalid_field

__all__ = ["CLIENT_GONE", "STATUS", "error_body", "install_handlers", "status_of"]

CLIENT_GONE = 499
"""The status logged for a request whose client hung up before its answer (nginx's convention; never sent)."""

STATUS: dict[type[RequestError], int] = {
    InvalidRequestError: 400,
    AuthenticationError: 401,
    PermissionDeniedError: 403,  # and TierLimitError
    NotFoundError: 404,
    TooLargeError: 413,
    UnsupportedMediaTypeError: 415,
    ShuttingDownError: 503,
}
"""The HTTP status of each request error (a subclass takes its nearest listed base's)."""

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    415: "invalid_request_error",
    503: "service_unavailable",
}


def status_of(error: RequestError) -> int:
    """The HTTP status of a request error: that of the nearest class in its MRO listed in :data:`STATUS`."""
    return next((STATUS[cls] for cls in type(error).__mro__ if cls in STATUS), 400)


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """The JSON body of an error response."""
    return {"error": {"message": message, "type": _TYPES.get(status, "error"), "param": param, "code": code}}


def request_error_body(error: RequestError) -> dict[str, Any]:
    """The JSON body of a request error (also sent as the last event of a failed stream)."""
    return error_body(status_of(error), error.message, error.param, error.code)


def _respond(
    request: Request,
    status: int,
    message: str,
    param: str | None,
    code: str | None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    request.state.error = code or _TYPES.get(status, "error")
    headers = {**(headers or {}), **({"WWW-Authenticate": "Bearer"} if status == 401 else {})}
    return JSONResponse(error_body(status, message, param, code), status, headers)


async def _request_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestError)
    return _respond(request, status_of(error), error.message, error.param, error.code)


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = error.errors()
    refused = invalid_field(errors[0]) if errors else InvalidRequestError("request: invalid request")
    return await _request_error(request, refused)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    allowed = (error.headers or {}).get("Allow")
    message = {
        404: f"No route {request.url.path}; see /docs.",
        405: f"{request.method} is not allowed here" + (f"; use {allowed}." if allowed else "."),
    }
    text = message.get(error.status_code, str(error.detail))
    return _respond(request, error.status_code, text, None, None, error.headers)


async def _client_gone(request: Request, error: Exception) -> Response:
    """A client that hung up mid-request is ordinary traffic: one ``request`` line (status 499), no error."""
    request.state.error = "client_gone"
    return Response(status_code=CLIENT_GONE)


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    from aimod.server.logs import logger

    logger.error("unexpected_error", exc_info=error, extra={"fields": {"path": request.url.path}})
    request.state.error = "internal_error"
    return JSONResponse(error_body(500, "Internal error; it is logged.", code="internal_error"), 500)


def install_handlers(app: FastAPI) -> None:
    """Routes every refusal to the JSON error shape."""
    app.add_exception_handler(RequestError, _request_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
