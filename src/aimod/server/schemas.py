"""Request bodies: their fields, and the one parser that turns a body into one of them or a clear 4xx.

Unknown fields are refused (400), so a misspelt option never silently does nothing. Fields that would choose
the noise (``sigma``, ``tier``, ``seed``, ...) are refused with 403 before anything else: the tier comes from
the API key alone. ``temperature`` and ``top_p`` are accepted for client compatibility and not applied: the
decision is the argmax of the modulated logits, and the tier's keyed noise is the only randomness.
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aimod.server.errors import ApiError

__all__ = [
    "ChatRequest",
    "ClassifyRequest",
    "CompletionRequest",
    "FORBIDDEN_FIELDS",
    "SegmentRequest",
    "parse_body",
    "parse_model",
]

FORBIDDEN_FIELDS = {
    "sigma": "the utility sigma",
    "tier": "the tier",
    "utility": "the utility level",
    "modulation": "the modulation",
    "noise": "the noise",
    "seed": "the noise seed",
    "key": "the noise key",
    "secret": "the noise secret",
}
"""Body fields that would choose the noise; refused with 403."""

Focus = dict[str, float]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(_Body):
    """One chat message."""

    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[dict[str, Any]]
    name: str | None = None


class _Generation(_Body):
    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    stream: bool = False
    stream_options: dict[str, bool] | None = None
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1, le=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    presence_penalty: float | None = Field(default=None, ge=0, le=0)
    frequency_penalty: float | None = Field(default=None, ge=0, le=0)
    user: str | None = None
    focus: Focus | None = None
    """Word -> signed focus strength (the std of the half-normal on the word's first tokens)."""

    def stops(self) -> tuple[str, ...]:
        """The stop strings (at most 4, non-empty)."""
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise ApiError(400, "`stop` must be at most 4 non-empty strings.", param="stop")
        return tuple(stops)


class ChatRequest(_Generation):
    """``POST /v1/chat/completions``."""

    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)


class CompletionRequest(_Generation):
    """``POST /v1/completions``."""

    prompt: str | list[str]
    echo: bool = Field(default=False, le=False)


class ClassifyRequest(_Body):
    """``POST /v1/classify`` as JSON."""

    image: str = Field(min_length=1)
    """The image file (PNG, JPEG, ...) in base64, optionally as a ``data:`` URL."""
    top_k: int = Field(default=5, ge=1)
    focus: Focus | None = None
    """Class name -> signed focus strength."""
    model: str | None = None


class SegmentRequest(_Body):
    """``POST /v1/segment`` as JSON."""

    image: str = Field(min_length=1)
    focus: Focus | None = None
    model: str | None = None


M = TypeVar("M", bound=BaseModel)


def refuse_noise_fields(data: dict[str, Any]) -> None:
    """403 for any field that would choose the noise."""
    for name, what in FORBIDDEN_FIELDS.items():
        if name in data:
            raise ApiError(
                403,
                f"`{name}` is not accepted: {what} comes only from your API key's tier. Ask the model owner for "
                "another tier.",
                param=name,
                code="tier_not_allowed",
            )


def parse_model(cls: type[M], data: Any) -> M:
    """Validates parsed JSON (or form fields) into ``cls``.

    Raises:
        ApiError: 403 for noise fields; 400 naming the first invalid field.
    """
    if not isinstance(data, dict):
        raise ApiError(400, f"The body must be a JSON object, got {type(data).__name__}.", code="invalid_json")
    refuse_noise_fields(data)
    if "logit_bias" in data:
        raise ApiError(
            400,
            "`logit_bias` is not supported: use `focus`, a map from word to signed strength (see /docs).",
            param="logit_bias",
        )
    try:
        return cls.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        if first["type"] == "extra_forbidden":
            message = f"Unknown field `{param}`; the accepted fields are listed in /docs."
        elif first["type"] == "missing":
            message = f"`{param}` is required."
        else:
            shown = json.dumps(first.get("input"), default=str)
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            message = f"`{param}`: {first['msg']} (got {shown})."
        raise ApiError(400, message, param=param, code="invalid_field") from None


async def parse_body(request: Request, cls: type[M], max_bytes: int) -> M:
    """Reads a JSON body (size-limited) and validates it into ``cls``.

    Raises:
        ApiError: 413 over ``max_bytes``; 415 for another content type; 400 for malformed JSON.
    """
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind != "application/json":
        raise ApiError(415, f"Send a JSON body (Content-Type: application/json), got {kind!r}.", code="content_type")
    body = await read_limited(request, max_bytes)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, bad UTF-8, huge numbers, deep nesting
        raise ApiError(400, f"Malformed JSON: {str(error)[:200]}.", code="invalid_json") from None
    return parse_model(cls, data)


async def read_limited(request: Request, max_bytes: int) -> bytes:
    """The raw body, refusing more than ``max_bytes`` (413) without reading it all into memory first."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"The body has {declared} bytes; at most {max_bytes}.", code="body_too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, f"The body exceeds {max_bytes} bytes.", code="body_too_large")
        chunks.append(chunk)
    return b"".join(chunks)
