"""aimod inside vLLM: the modulation as a vLLM (V1) custom logits processor.

:class:`AimodLogitsProcessor` gives every request that carries aimod's arguments in its
``SamplingParams.extra_args`` (see :func:`extra_args`) the same keyed noise as the Hugging Face path: each row's
key is the digest of its token prefix, exactly :func:`aimod.text.prefix_keys`'s, so one secret gives the same
noise on both engines. The secret is read in the engine's own process from ``$AIMOD_SECRET_FILE`` (the first line
of that file) or ``$AIMOD_SECRET``; it never travels in a request. ``$AIMOD_NOISE`` picks the noise source:
``keyed`` (:class:`~aimod.KeyedNoise`, the default) or the field ``aimod serve`` uses for language models
(``field:scale=3.0,features=64,clip=5.0``, :class:`~aimod.FieldNoise`); :func:`noise_spec` writes it.

Load it with ``vllm.LLM(..., logits_processors=[AimodLogitsProcessor])`` or
``vllm serve ... --logits-processors aimod.vllm:AimodLogitsProcessor``. With ``vllm serve`` the caller picks its
own σ through ``vllm_xargs``: that mode has no tiers, for trusted internal deployments only
(docs/vllm.md). Importing this package does not import vLLM; the processor class does, on first use.

Example:
    >>> from aimod import Modulation
    >>> extra_args(Modulation(sigma=1.0, focus={42: 2.0}))
    {'aimod_sigma': 1.0, 'aimod_focus_ids': [42], 'aimod_focus_sigmas': [2.0]}
    >>> modulation_from_extra_args({"aimod_sigma": 0.5})
    Modulation(sigma=0.5, focus={})
"""

from __future__ import annotations

from typing import Any

from aimod.vllm.args import (
    FOCUS_IDS,
    FOCUS_SIGMAS,
    NOISE_ENV,
    SECRET_ENV,
    SECRET_FILE_ENV,
    SIGMA,
    engine_noise,
    engine_secret,
    extra_args,
    modulation_from_extra_args,
    noise_spec,
)

__all__ = [
    "FOCUS_IDS",
    "FOCUS_SIGMAS",
    "SECRET_ENV",
    "NOISE_ENV",
    "SECRET_FILE_ENV",
    "SIGMA",
    "AimodLogitsProcessor",
    "engine_noise",
    "engine_secret",
    "extra_args",
    "modulation_from_extra_args",
    "noise_spec",
]


def __getattr__(name: str) -> Any:
    if name == "AimodLogitsProcessor":  # imports vLLM: only when asked for
        from aimod.vllm.processor import AimodLogitsProcessor

        return AimodLogitsProcessor
    raise AttributeError(f"module 'aimod.vllm' has no attribute {name!r}")
