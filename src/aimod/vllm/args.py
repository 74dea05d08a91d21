"""aimod's per-request arguments in vLLM's ``SamplingParams.extra_args``, and the engine's secret.

vLLM passes ``extra_args`` through untouched (its OpenAI server fills it from ``vllm_xargs``: flat values and
lists only), so a modulation travels as three flat entries: ``aimod_sigma`` (the utility std, which turns the
processor on for the request), and optionally ``aimod_focus_ids`` (token ids) with ``aimod_focus_sigmas`` (their
signed stds, same length). Anything else starting with ``aimod_`` is refused, as are booleans and strings where
numbers belong: a typo must not silently serve a request without its noise.

Example:
    >>> modulation_from_extra_args({"aimod_sigma": 1, "aimod_focus_ids": [7], "aimod_focus_sigmas": [-2.5]})
    Modulation(sigma=1.0, focus={7: -2.5})
    >>> modulation_from_extra_args({"temperature_hint": 3}) is None   # not aimod's: the row is left alone
    True
    >>> modulation_from_extra_args({"aimod_sigma": True})
    Traceback (most recent call last):
    ...
    ValueError: extra_args['aimod_sigma'] must be a number >= 0 (the utility std), not True (bool); ...
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aimod.errors import AimodError
from aimod.field import FieldNoise
from aimod.modulation import Modulation
from aimod.noise import KeyedNoise, NoiseSource

__all__ = [
    "FOCUS_IDS",
    "FOCUS_SIGMAS",
    "SECRET_ENV",
    "SECRET_FILE_ENV",
    "NOISE_ENV",
    "SIGMA",
    "engine_noise",
    "engine_secret",
    "extra_args",
    "modulation_from_extra_args",
    "noise_spec",
]

SIGMA = "aimod_sigma"
FOCUS_IDS = "aimod_focus_ids"
FOCUS_SIGMAS = "aimod_focus_sigmas"
SECRET_ENV = "AIMOD_SECRET"
"""The environment variable holding the noise secret in the engine's process."""
SECRET_FILE_ENV = "AIMOD_SECRET_FILE"
"""Or: the path of a file whose first line is the secret (takes precedence over :data:`SECRET_ENV`)."""
NOISE_ENV = "AIMOD_NOISE"
"""The engine's noise source: ``keyed`` (the default) or ``field:scale=S,features=D,clip=C`` (:func:`noise_spec`)."""
_KNOWN = {SIGMA, FOCUS_IDS, FOCUS_SIGMAS}


def extra_args(modulation: Modulation) -> dict[str, Any]:
    """The ``extra_args`` entries that ask :class:`~aimod.vllm.AimodLogitsProcessor` for ``modulation``.

    Focus keys must be token ids (see :func:`aimod.text.token_focus`).

    Raises:
        ValueError: If a focus key is a word, not a token id.
    """
    names = [key for key in modulation.focus if not isinstance(key, int)]
    if names:
        raise ValueError(
            f"focus keys must be token ids for vLLM, got {names[:3]!r}; turn words into ids first with "
            "aimod.text.token_focus(tokenizer, modulation)"
        )
    out: dict[str, Any] = {SIGMA: float(modulation.sigma)}
    if modulation.focus:
        out[FOCUS_IDS] = [int(key) for key in modulation.focus]
        out[FOCUS_SIGMAS] = [float(value) for value in modulation.focus.values()]
    return out


def _number(name: str, value: object, allowed: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(
            f"extra_args[{name!r}] must be {allowed}, not {value!r} ({type(value).__name__}); "
            "send a JSON number, e.g. 1.0"
        )
    return float(value)


def _list(name: str, value: object) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"extra_args[{name!r}] must be a list, not {type(value).__name__}")
    return list(value)


def modulation_from_extra_args(args: Mapping[str, Any] | None) -> Modulation | None:
    """The request's modulation, or None when ``args`` has no aimod entry (the row gets no noise).

    Raises:
        ValueError: For unknown ``aimod_*`` entries, focus without ``aimod_sigma``, wrong types, lists of
            different lengths, negative or non-integer token ids, or an invalid modulation (vLLM turns a
            ValueError from request validation into HTTP 400).
    """
    if not args:
        return None
    ours = {key for key in args if isinstance(key, str) and key.startswith("aimod_")}
    unknown = sorted(ours - _KNOWN)
    if unknown:
        raise ValueError(f"unknown extra_args {unknown}; aimod reads {sorted(_KNOWN)}")
    if not ours:
        return None
    if SIGMA not in args:
        raise ValueError(f"extra_args has {sorted(ours)} but no {SIGMA!r}; send {SIGMA!r}: 0.0 for focus only")
    sigma = _number(SIGMA, args[SIGMA], "a number >= 0 (the utility std)")
    ids = _list(FOCUS_IDS, args.get(FOCUS_IDS, []))
    stds = _list(FOCUS_SIGMAS, args.get(FOCUS_SIGMAS, []))
    if len(ids) != len(stds):
        raise ValueError(f"{FOCUS_IDS} has {len(ids)} entries and {FOCUS_SIGMAS} {len(stds)}; give one std per id")
    for token in ids:
        if isinstance(token, bool) or not isinstance(token, int) or token < 0:
            raise ValueError(f"{FOCUS_IDS} must hold token ids (integers >= 0), not {token!r}")
    strengths = [_number(FOCUS_SIGMAS, value, "a list of numbers (signed stds)") for value in stds]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{FOCUS_IDS} lists a token id twice; give each id once")
    try:
        return Modulation(sigma=sigma, focus=dict(zip(ids, strengths, strict=True)))
    except AimodError as error:
        raise ValueError(str(error)) from None


def engine_secret() -> str | None:
    """The noise secret of this process: the first line of ``$AIMOD_SECRET_FILE``, else ``$AIMOD_SECRET``.

    Returns None when neither is set. The value is never logged or put in an error.

    Raises:
        ValueError: When ``$AIMOD_SECRET_FILE`` names a file that cannot be read, or the secret is shorter than
            16 characters.
    """
    path = os.environ.get(SECRET_FILE_ENV)
    if path:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise ValueError(f"${SECRET_FILE_ENV} names {path}, which cannot be read: {error.strerror}") from None
        value, where = (lines[0].strip() if lines else ""), f"the first line of ${SECRET_FILE_ENV}"
    else:
        value, where = os.environ.get(SECRET_ENV, "").strip(), f"${SECRET_ENV}"
    if not value:
        return None
    if len(value) < 16:
        raise ValueError(f"the noise secret in {where} has {len(value)} characters; use at least 16")
    return value


def noise_spec(noise: NoiseSource) -> str:
    """The :data:`NOISE_ENV` value that makes an engine build the same kind of noise source (the secret apart).

    Example:
        >>> noise_spec(KeyedNoise("a long owner secret")), noise_spec(FieldNoise.for_text("a long owner secret"))
        ('keyed', 'field:scale=3.0,features=64,clip=5.0')

    Raises:
        ValueError: For a noise source other than KeyedNoise and FieldNoise (SeededNoise is for experiments).
    """
    if isinstance(noise, FieldNoise):
        return f"field:scale={noise.scale!r},features={noise.features},clip={noise.clip!r}"
    if isinstance(noise, KeyedNoise):
        return "keyed"
    raise ValueError(f"a vLLM engine draws KeyedNoise or FieldNoise, not {type(noise).__name__}")


def engine_noise(secret: str) -> NoiseSource:
    """The noise source ``$AIMOD_NOISE`` names (``keyed`` when unset), with ``secret``.

    Example:
        >>> engine_noise("a long owner secret")
        KeyedNoise(secret=<hidden>)

    Raises:
        ValueError: When ``$AIMOD_NOISE`` is neither ``keyed`` nor a valid ``field:...`` spec.
    """
    spec = os.environ.get(NOISE_ENV, "keyed").strip()
    if spec == "keyed":
        return KeyedNoise(secret)
    kind, _, rest = spec.partition(":")
    if kind == "field":
        try:
            items = dict(item.split("=", 1) for item in rest.split(",")) if rest else {}
            extra = sorted(set(items) - {"scale", "features", "clip"})
            if not extra:
                return FieldNoise(
                    secret,
                    scale=float(items.get("scale", 3.0)),
                    features=int(items.get("features", 256)),
                    clip=float(items.get("clip", 30.0)),
                )
        except (ValueError, AimodError):
            pass
    raise ValueError(
        f"${NOISE_ENV} is {spec!r}; use 'keyed' or 'field:scale=3.0,features=64,clip=5.0' (aimod.vllm.noise_spec)"
    )
