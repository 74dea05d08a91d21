"""What aimod's TOML files share: the name and hash patterns, and how a schema error is reported.

``server.toml`` (:mod:`aimod.server.config`) and the tiers file (:mod:`aimod.calibrate.tiers`) are both checked
by pydantic models built on :class:`Strict`; both use these pattern objects, so a name one file accepts the other
accepts too, and both report the first problem with :func:`config_error` as a :class:`~aimod.errors.ConfigError`
naming the field (``tiers.free.sigma``, ``tenants[1].tier``).

Example:
    >>> bool(NAME.fullmatch("v1.0")), bool(NAME.fullmatch("free")), bool(NAME.fullmatch(".hidden"))
    (True, True, False)
    >>> bool(SHA256.fullmatch("sha256:" + "0" * 64))
    True
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from aimod.errors import ConfigError

__all__ = ["NAME", "NAME_FORM", "SHA256", "SHA256_FORM", "Strict", "config_error", "dotted"]

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A tier or tenant name: an ASCII letter or digit, then up to 63 letters, digits, ``_``, ``-`` or ``.``."""
NAME_FORM = "letters, digits, '_', '-' or '.' (at most 64, starting with a letter or digit)"
"""What :data:`NAME` allows, phrased to follow "must be"."""
SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
"""A SHA-256 digest as the files record it: the weights of a model, an API key."""
SHA256_FORM = "'sha256:' and 64 lowercase hex digits"
"""What :data:`SHA256` allows, phrased to follow "must be"."""


class Strict(BaseModel):
    """A table of a TOML file: unknown keys refused, no coercion (``"0.5"`` is not a number), immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def config_error(where: str, error: ValidationError, docs: str, kind: type[ConfigError] = ConfigError) -> ConfigError:
    """The first problem of a failed validation, as a :class:`ConfigError` naming the field.

    Pydantic's "Input should be ..." reads "must be ...", after the field's name.

    Args:
        where: The file (or a label such as ``"config"``).
        error: What pydantic raised.
        docs: The page that lists the fields (named for an unknown field).
        kind: The :class:`ConfigError` subclass to return.
    """
    first = error.errors()[0]
    field = dotted(first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if message.startswith("Input should be "):
        message = "must be " + message.removeprefix("Input should be ")
    if first["type"] == "extra_forbidden":
        message = f"an unknown field (remove it, or check its spelling against {docs})"
    elif first["type"] == "missing":
        message = "required"
    hidden = first["type"] in ("missing", "extra_forbidden") or "key" in field
    shown = "" if hidden else f" (got {_shown(first.get('input'))})"  # a key pasted by mistake stays hidden
    return kind(where, field, f"{message}{shown}.")


def dotted(loc: tuple[Any, ...]) -> str:
    """A pydantic location as a field path: ``("tenants", 1, "tier")`` -> ``tenants[1].tier``.

    Example:
        >>> dotted(("tenants", 1, "tier")), dotted(("tiers", "v1.0", "sigma")), dotted(())
        ('tenants[1].tier', 'tiers.v1.0.sigma', '(top level)')
    """
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _shown(value: object) -> str:
    if isinstance(value, dict):
        return "a table"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
