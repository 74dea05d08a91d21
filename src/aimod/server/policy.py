"""The owner's focus policy, and the one place a request's focus becomes a :class:`~aimod.Modulation`.

A request's ``focus`` is a map, like OpenAI's ``logit_bias``, from a class name (vision) or a word
(language) to a signed strength: the std of the one-signed half-normal added to that class or to the first
tokens of that word (+ promotes, - suppresses). The owner allows some names (or ``"*"``) and a largest
``|strength|``; the tenant's tier sets σ. The request can add focus; it can never touch σ.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from aimod.errors import AimodError, InvalidRequestError, TierLimitError, UnknownClassError
from aimod.modulation import Modulation, resolve_class
from aimod.server.config import FocusConfig
from aimod.server.tenants import Tenant

__all__ = ["MAX_FOCUS_CHARS", "MAX_FOCUS_ENTRIES", "FocusPolicy"]

MAX_FOCUS_ENTRIES = 64
"""The most classes or words one request may focus."""

MAX_FOCUS_CHARS = 128
"""The longest class name or word one request may focus."""


class FocusPolicy:
    """Checks focus requests against ``[focus]`` and builds each row's modulation.

    Args:
        config: The ``[focus]`` table.
        id2label: Class names of a vision model; ``None`` for a language model (focus keys are words).
        tokenizer: A language model's tokenizer (words must encode to at least one token).

    Example:
        >>> from aimod.server.config import FocusConfig
        >>> policy = FocusPolicy(FocusConfig(allowed=["cat"], max_sigma=3.0), id2label={0: "cat", 1: "dog"})
        >>> policy.modulation(Tenant("acme", "free", 1.5), {"cat": 2.0})
        Modulation(sigma=1.5, focus={0: 2.0})
    """

    def __init__(self, config: FocusConfig, *, id2label: Mapping[int, str] | None, tokenizer: Any = None) -> None:
        self.any = "*" in config.allowed
        self.max_sigma = config.max_sigma
        self.id2label = id2label
        self.tokenizer = tokenizer
        if id2label is not None:
            num = len(id2label)
            self._allowed_ids = (
                set(range(num)) if self.any else {resolve_class(n, num, id2label) for n in config.allowed}
            )
        self._allowed_words = {w.casefold() for w in config.allowed}

    def describe(self) -> dict[str, Any]:
        """The policy as the API shows it."""
        if self.any:
            allowed: list[str] | str = "*"
        elif self.id2label is not None:
            allowed = [self.id2label[i] for i in sorted(self._allowed_ids)]
        else:
            allowed = sorted(self._allowed_words)
        return {"allowed": allowed, "max_sigma": self.max_sigma}

    def modulation(self, tenant: Tenant, focus: Mapping[str, float] | None) -> Modulation:
        """The row's modulation: the tenant's σ and the request's focus, checked.

        Raises:
            InvalidRequestError: For a malformed focus or an unknown class or word.
            TierLimitError: For a class or word the policy does not allow, or a strength over ``max_sigma``.
        """
        if not focus:
            return Modulation(sigma=tenant.sigma)
        if len(focus) > MAX_FOCUS_ENTRIES:
            raise InvalidRequestError(f"focus names {len(focus)} entries; at most {MAX_FOCUS_ENTRIES}.", param="focus")
        resolved: dict[int | str, float] = {}
        for key, strength in focus.items():
            if isinstance(key, str) and len(key) > MAX_FOCUS_CHARS:
                raise InvalidRequestError(
                    f"focus names a word of {len(key)} characters; at most {MAX_FOCUS_CHARS}.", param="focus"
                )
            if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
                raise InvalidRequestError(f"focus[{key!r}] must be a finite number, got {strength!r}.", param="focus")
            if abs(strength) > self.max_sigma:
                raise TierLimitError(
                    f"focus[{key!r}] = {strength:g} exceeds the largest focus strength this server allows "
                    f"({self.max_sigma:g}).",
                    param="focus",
                    code="focus_not_allowed",
                )
            target = self._resolve(key)
            if target in resolved:
                raise InvalidRequestError(f"focus names {key!r} twice (as another spelling).", param="focus")
            resolved[target] = float(strength)
        try:
            return Modulation(sigma=tenant.sigma, focus=resolved)
        except AimodError as error:  # pragma: no cover - values are checked above
            raise InvalidRequestError(str(error), param="focus") from None

    def _resolve(self, key: str) -> int | str:
        if not isinstance(key, str) or not key.strip():
            raise InvalidRequestError(f"focus keys must be non-empty strings, got {key!r}.", param="focus")
        if self.id2label is not None:
            try:
                class_id = resolve_class(key, len(self.id2label), self.id2label)
            except UnknownClassError as error:
                raise InvalidRequestError(str(error), param="focus", code="unknown_class") from None
            if class_id not in self._allowed_ids:
                raise TierLimitError(
                    f"Focus on {key!r} is not allowed here; allowed: {self.describe()['allowed']}.",
                    param="focus",
                    code="focus_not_allowed",
                )
            return class_id
        word = key.strip()
        if not self.any and word.casefold() not in self._allowed_words:
            raise TierLimitError(
                f"Focus on {word!r} is not allowed here; allowed: {self.describe()['allowed']}.",
                param="focus",
                code="focus_not_allowed",
            )
        if self.tokenizer is not None and not self.tokenizer.encode(word, add_special_tokens=False):
            raise InvalidRequestError(f"focus word {word!r} encodes to no token.", param="focus", code="unknown_word")
        return word
