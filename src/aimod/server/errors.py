"""HTTP errors in the OpenAI shape: ``{"error": {"message", "type", "param", "code"}}`` with a 4xx status.

Every refusal the server makes is an :class:`ApiError`; the handlers installed by :func:`install_handlers`
turn it (and FastAPI's own validation and 404/405 errors) into that JSON, so the ``openai`` client raises its
usual ``BadRequestError``, ``AuthenticationError``, ``PermissionDeniedError`` or ``NotFoundError``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["ApiError", "error_body", "install_handlers"]

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


class ApiError(Exception):
    """A refused request.

    Args:
        status: The HTTP status (4xx, or 503 while shutting down).
        message: What was wrong, what is allowed and how to fix it. Never a key or a secret.
        param: The request field at fault, if any.
        code: A short machine-readable reason (``invalid_api_key``, ``tier_not_allowed``, ...).
    """

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """The JSON body of an error response."""
    return {"error": {"message": message, "type": _TYPES.get(status, "error"), "param": param, "code": code}}


def _respond(request: Request, error: ApiError) -> JSONResponse:
    request.state.error = error.code or _TYPES.get(error.status, "error")
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse(error_body(error.status, error.message, error.param, error.code), error.status, headers)


def install_handlers(app: FastAPI) -> None:
    """Routes every refusal to the JSON error shape."""

    async def api_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ApiError)
        return _respond(request, error)

    async def validation_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
        param = ".".join(str(p) for p in first["loc"] if p != "body") or None
        return _respond(request, ApiError(400, f"{param or 'request'}: {first['msg']}", param=param))

    async def http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        message = {404: f"No route {request.url.path}; see /docs.", 405: f"{request.method} is not allowed here."}
        return _respond(request, ApiError(error.status_code, message.get(error.status_code, str(error.detail))))

    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        from aimod.server.logs import logger

        logger.error("unexpected_error", exc_info=error, extra={"fields": {"path": request.url.path}})
        request.state.error = "internal_error"
        return JSONResponse(error_body(500, "Internal error; it is logged.", code="internal_error"), 500)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(Exception, unexpected)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
