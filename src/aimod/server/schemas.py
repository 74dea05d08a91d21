"""Request bodies: their fields, typed, so FastAPI validates them and writes the OpenAPI document.

Unknown fields are refused (400), so a misspelt option never silently does nothing. Fields that would choose
the noise (``sigma``, ``tier``, ``seed``, ...) are refused with 403 before anything else, by a validator on the
shared body model: the tier comes from the API key alone.
``temperature`` and ``top_p`` are accepted for client compatibility and not applied: the
decision is the argmax of the modulated logits, and the tier's keyed noise is the only randomness.
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aimod.errors import InvalidRequestError, TierLimitError

__all__ = [
    "ChatRequest",
    "ClassifyRequest",
    "CompletionRequest",
    "FORBIDDEN_FIELDS",
    "SegmentRequest",
    "invalid_field",
    "parse_model",
    "refuse_noise_fields",
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


class Message(_Body):
    """One chat message."""

    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[dict[str, Any]]
    name: str | None = None


class _Generation(_Request):
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
            raise InvalidRequestError("`stop` must be at most 4 non-empty strings.", param="stop")
        return tuple(stops)


class ChatRequest(_Generation):
    """``POST /v1/chat/completions``."""

    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)


class CompletionRequest(_Generation):
    """``POST /v1/completions``."""

    prompt: str | list[str]
    echo: bool = Field(default=False, le=False)


class ClassifyRequest(_Request):
    """``POST /v1/classify`` as JSON."""

    image: str = Field(min_length=1)
    """The image file (PNG, JPEG, ...) in base64, optionally as a ``data:`` URL."""
    top_k: int = Field(default=5, ge=1)
    focus: Focus | None = None
    """Class name -> signed focus strength."""
    model: str | None = None


class SegmentRequest(_Request):
    """``POST /v1/segment`` as JSON."""

    image: str = Field(min_length=1)
    focus: Focus | None = None
    model: str | None = None


M = TypeVar("M", bound=BaseModel)


def refuse_noise_fields(data: dict[str, Any]) -> None:
    """Refuses any field that would choose the noise.

    Raises:
        TierLimitError: Naming the first such field (HTTP 403, ``tier_not_allowed``).
    """
    for name, what in FORBIDDEN_FIELDS.items():
        if name in data:
            raise TierLimitError(
                f"`{name}` is not accepted: {what} comes only from your API key's tier. Ask the model owner for "
                "another tier.",
                param=name,
                code="tier_not_allowed",
            )


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
