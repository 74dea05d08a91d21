"""Request bodies: their fields, typed, so FastAPI validates them and writes the OpenAPI document.

Unknown fields are refused (400), so a misspelt option never silently does nothing, and values are never
coerced (``true`` or ``"5"`` for a number is a 400, as is ``4.0`` for a count). Fields that would choose the
noise (``sigma``, ``tier``, ``seed``, ...) are refused with 403 before anything else, in any letter case and
at any depth of the body (``stream_options.Sigma``), in form fields and in the query string: the tier comes
from the API key alone. Text that is not Unicode (a lone surrogate such as ``"\ud800"``, which JSON can
spell) is refused with 400 before it reaches a tokenizer.
``temperature`` and ``top_p`` are accepted for client compatibility and not applied: the
decision is the argmax of the modulated logits, and the tier's keyed noise is the only randomness.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from aimod.errors import InvalidRequestError, TierLimitError
from aimod.server.policy import MAX_FOCUS_CHARS, MAX_FOCUS_ENTRIES

__all__ = [
    "ChatRequest",
    "ClassifyRequest",
    "CompletionRequest",
    "ErrorResponse",
    "FORBIDDEN_FIELDS",
    "SegmentRequest",
    "invalid_field",
    "parse_model",
    "refuse_noise_fields",
    "refuse_unencodable",
]

FORBIDDEN_FIELDS = {
    "sigma": "the utility sigma",
    "tier": "the tier",
    "utility": "the utility level",
    "modulation": "the modulation",
    "noise": "the noise",
    "noise_key": "the noise key",
    "noise_seed": "the noise seed",
    "keying": "the noise keying",
    "seed": "the noise seed",
    "key": "the noise key",
    "secret": "the noise secret",
}
"""Body fields that would choose the noise; refused with 403 in any letter case, wherever they appear."""

Focus = Annotated[
    dict[Annotated[str, StringConstraints(min_length=1, max_length=MAX_FOCUS_CHARS)], float],
    Field(max_length=MAX_FOCUS_ENTRIES),
]
"""Name -> signed strength: at most :data:`~aimod.server.policy.MAX_FOCUS_ENTRIES` names of at most
:data:`~aimod.server.policy.MAX_FOCUS_CHARS` characters."""

MAX_MESSAGES = 1024
"""The most chat messages of one request."""

ShortText = Annotated[str, StringConstraints(max_length=256)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Request(_Body):
    """What every request body shares: unknown fields refused, noise-choosing fields refused first."""

    @model_validator(mode="before")
    @classmethod
    def _refuse_noise_fields(cls, data: Any) -> Any:
        # runs before any field is checked, so a noise field is refused (403) whatever else the body holds
        if isinstance(data, dict):
            refuse_noise_fields(data)
            if "logit_bias" in data:
                raise InvalidRequestError(
                    "`logit_bias` is not supported: use `focus`, a map from word to signed strength (see /docs).",
                    param="logit_bias",
                )
        return data


class TextPart(_Body):
    """One part of a message's content (only text parts are supported)."""

    type: Literal["text"]
    text: str


class Message(_Body):
    """One chat message."""

    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[TextPart]
    name: ShortText | None = None

    def text(self) -> str:
        """The message's text (its parts joined)."""
        return self.content if isinstance(self.content, str) else "".join(part.text for part in self.content)


class StreamOptions(_Body):
    """``stream_options``."""

    include_usage: bool = False


class _Generation(_Request):
    model: ShortText
    max_tokens: int | None = Field(default=None, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[ShortText] | None = Field(default=None, max_length=4)
    n: int = Field(default=1, ge=1, le=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    presence_penalty: float | None = Field(default=None, ge=0, le=0)
    frequency_penalty: float | None = Field(default=None, ge=0, le=0)
    user: ShortText | None = None
    focus: Focus | None = None
    """Word -> signed focus strength (the std of the half-normal on the word's first tokens)."""

    def stops(self) -> tuple[str, ...]:
        """The stop strings (at most 4, non-empty)."""
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise InvalidRequestError("`stop` must be at most 4 non-empty strings.", param="stop")
        return tuple(stops)


MAX_PROMPTS = 16
"""The most prompts one completions request may list."""


class ChatRequest(_Generation):
    """``POST /v1/chat/completions``."""

    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_completion_tokens: int | None = Field(default=None, ge=1)


class CompletionRequest(_Generation):
    """``POST /v1/completions``."""

    prompt: str | Annotated[list[str], Field(min_length=1, max_length=MAX_PROMPTS)]
    """One prompt, or up to :data:`MAX_PROMPTS` (one choice each); lengths are bounded by ``max_prompt_chars``."""
    echo: bool = Field(default=False, le=False)


class ClassifyRequest(_Request):
    """``POST /v1/classify`` as JSON."""

    image: str = Field(min_length=1)
    """The image file (PNG, JPEG, ...) in base64, optionally as a ``data:`` URL."""
    top_k: int = Field(default=5, ge=1)
    focus: Focus | None = None
    """Class name -> signed focus strength."""
    model: ShortText | None = None


class SegmentRequest(_Request):
    """``POST /v1/segment`` as JSON."""

    image: str = Field(min_length=1)
    focus: Focus | None = None
    model: ShortText | None = None


class ErrorDetail(BaseModel):
    """What went wrong (OpenAI's error shape)."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """The body of every 4xx and 5xx answer."""

    error: ErrorDetail


M = TypeVar("M", bound=BaseModel)


def refuse_noise_fields(data: Any) -> None:
    """Refuses any field that would choose the noise, in any letter case, at any depth of ``data``.

    The keys of a top-level ``focus`` map are names of classes or words, not fields, and are not looked at.

    Raises:
        TierLimitError: Naming the first such field (HTTP 403, ``tier_not_allowed``).

    Example:
        >>> refuse_noise_fields({"stream_options": {"Sigma": 0}})
        Traceback (most recent call last):
        ...
        aimod.errors.TierLimitError: `stream_options.Sigma` is not accepted: the utility sigma comes only from ...
    """
    for path, value in _walk(data, skip=("focus",)):
        if not isinstance(value, dict):
            continue
        for name in value:
            what = FORBIDDEN_FIELDS.get(str(name).casefold())
            if what is not None:
                param = ".".join([*path, str(name)])
                raise TierLimitError(
                    f"`{param}` is not accepted: {what} comes only from your API key's tier. Ask the model owner "
                    "for another tier.",
                    param=param,
                    code="tier_not_allowed",
                )


def refuse_unencodable(data: Any) -> None:
    r"""Refuses strings (keys or values, at any depth) that are not valid Unicode, such as a lone surrogate.

    Raises:
        InvalidRequestError: Naming the field (HTTP 400, ``invalid_text``).

    Example:
        >>> refuse_unencodable({"prompt": "fine", "focus": {"\ud800": 1.0}})
        Traceback (most recent call last):
        ...
        aimod.errors.InvalidRequestError: `focus` contains a lone surrogate ('\ud800'), which is not Unicode ...
    """
    for path, value in _walk(data):
        strings = [value] if isinstance(value, str) else list(value) if isinstance(value, dict) else []
        for text in strings:
            if isinstance(text, str) and not _encodable(text):
                param = ".".join(path) or None
                bad = next(c for c in text if 0xD800 <= ord(c) <= 0xDFFF)
                raise InvalidRequestError(
                    f"`{param}` contains a lone surrogate ({bad!r}), which is not Unicode text; send UTF-8 text.",
                    param=param,
                    code="invalid_text",
                )


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _walk(data: Any, skip: tuple[str, ...] = ()) -> list[tuple[list[str], Any]]:
    """Every value of a parsed JSON document with its path, iteratively (a deep body cannot overflow the stack).

    The values of top-level keys in ``skip`` are left out.
    """
    found: list[tuple[list[str], Any]] = []
    stack: list[tuple[list[str], Any]] = [([], data)]
    while stack:
        path, value = stack.pop()
        found.append((path, value))
        if isinstance(value, dict):
            stack.extend(
                ([*path, str(k)], v)
                for k, v in value.items()
                if not (path == [] and k in skip) and isinstance(v, (dict, list, str))
            )
        elif isinstance(value, list):
            stack.extend(([*path, str(i)], v) for i, v in enumerate(value) if isinstance(v, (dict, list, str)))
    return found


def invalid_field(error: Any) -> InvalidRequestError:
    """The refusal of one pydantic error (a dict of ``ValidationError.errors()``), naming the field."""
    param = ".".join(str(p) for p in error["loc"] if p != "body") or None
    if error["type"] == "extra_forbidden":
        message = f"Unknown field `{param}`; the accepted fields are listed in /docs."
    elif error["type"] == "missing":
        message = f"`{param}` is required."
    else:
        shown = json.dumps(error.get("input"), default=str)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        message = f"`{param}`: {error['msg']} (got {shown})."
    return InvalidRequestError(message, param=param, code="invalid_field")


def parse_model(cls: type[M], data: Any) -> M:
    """Validates parsed JSON (or form fields) into ``cls``.

    Raises:
        TierLimitError: For noise fields.
        InvalidRequestError: For a body that is not an object, or naming the first invalid field.
    """
    if not isinstance(data, dict):
        raise InvalidRequestError(f"The body must be a JSON object, got {type(data).__name__}.", code="invalid_json")
    try:
        return cls.model_validate(data)
    except ValidationError as error:
        raise invalid_field(error.errors()[0]) from None
