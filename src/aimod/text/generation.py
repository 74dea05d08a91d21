"""``aimod.text.generate``: modulated completions of a list of prompts with any Hugging Face causal LM."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from aimod.errors import InvalidArgumentError
from aimod.modulation import Modulation
from aimod.noise import NoiseSource
from aimod.text.focus import token_focus
from aimod.text.processor import AimLogitsProcessor

__all__ = ["generate"]


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    modulation: Modulation | str | Mapping[str, Any] | Sequence[Modulation],
    *,
    noise: NoiseSource,
    max_new_tokens: int = 32,
    batch_size: int = 8,
    chat: bool | None = None,
    do_sample: bool = False,
    **generate_kwargs: Any,
) -> list[str]:
    """Completions of ``prompts`` under a modulation (one for all, or one per prompt).

    Prompts are wrapped in the tokenizer's chat template when it has one (``chat=None``; force with True or
    False), left-padded into batches of ``batch_size``, and generated with :class:`AimLogitsProcessor`.
    Focus words are expanded to token ids with :func:`aimod.text.token_focus`. With ``KeyedNoise`` a prompt's
    completion does not depend on the batch it lands in.

    Raises:
        InvalidArgumentError: For an empty prompt list, an empty prompt, or a per-prompt modulation list of the
            wrong length.
    """
    if not prompts or any(not isinstance(p, str) or not p.strip() for p in prompts):
        raise InvalidArgumentError("prompts", prompts, "a non-empty list of non-empty strings")
    if isinstance(modulation, (Modulation, str, Mapping)):
        mods = [token_focus(tokenizer, Modulation.coerce(modulation))] * len(prompts)
    else:
        if len(modulation) != len(prompts):
            raise InvalidArgumentError(
                "modulation", f"{len(modulation)} modulations", f"one Modulation or one per prompt ({len(prompts)})"
            )
        mods = [token_focus(tokenizer, m) for m in modulation]
    if batch_size < 1 or max_new_tokens < 1:
        raise InvalidArgumentError("batch_size, max_new_tokens", (batch_size, max_new_tokens), "both >= 1")
    use_chat = getattr(tokenizer, "chat_template", None) is not None if chat is None else chat
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
        if use_chat
        else p
        for p in prompts
    ]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise InvalidArgumentError("tokenizer", "a tokenizer with neither a pad nor an eos token", "one with either")
    side, pad_token = tokenizer.padding_side, tokenizer.pad_token
    tokenizer.padding_side = "left"
    if pad_token is None:  # GPT-2 and Llama tokenizers have none: pad with eos, as generate does
        tokenizer.pad_token = tokenizer.eos_token
    try:
        completions: list[str] = []
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            encoded = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=not use_chat)
            device = next(model.parameters()).device
            encoded = {k: v.to(device) for k, v in encoded.items()}
            processor = AimLogitsProcessor(mods[start : start + batch_size], noise=noise, pad_token_id=pad_id)
            with torch.no_grad():
                out = model.generate(
                    **encoded,
                    max_new_tokens=max_new_tokens,
                    do_sample=do_sample,
                    logits_processor=[processor],
                    pad_token_id=pad_id,
                    **generate_kwargs,
                )
            new_tokens = out[:, encoded["input_ids"].shape[1] :]
            completions += tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return completions
    finally:
        tokenizer.padding_side, tokenizer.pad_token = side, pad_token
