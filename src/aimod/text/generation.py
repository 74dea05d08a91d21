"""Modulated completions with any Hugging Face causal LM: ``generate`` and the σ-grid ``generate_grid``.

``generate`` completes each prompt under its modulation. ``generate_grid`` completes every prompt under every
modulation of a list (a σ sweep, or one answer per tier) in one batched ``generate`` per chunk of prompts:
rows are prompts x modulations, and each prompt's prefill (the forward pass over the prompt, most of the
cost for short answers) runs once and is shared by its rows through the key-value cache.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from aimod.errors import InvalidArgumentError
from aimod.modulation import Modulation
from aimod.noise import NoiseSource
from aimod.text.focus import token_focus
from aimod.text.padding import encode_left_padded, eos_ids, pad_id, positions
from aimod.text.processor import AimLogitsProcessor

__all__ = ["Completions", "format_prompts", "generate", "generate_grid"]

ModulationLike = Modulation | str


@dataclass(frozen=True)
class Completions:
    """Completions of every prompt under every modulation of a grid."""

    texts: list[list[str]]
    """``texts[m][p]``: the decoded completion of prompt ``p`` under modulation ``m``."""
    token_ids: list[list[list[int]]]
    """``token_ids[m][p]``: its new tokens, up to and including the first end-of-sequence token."""


def format_prompts(
    tokenizer: Any, prompts: Sequence[str], *, chat: bool | None = None, reply_prefix: Sequence[str] | str | None = None
) -> tuple[list[str], bool]:
    """The texts the model sees, and whether they already hold the special tokens.

    With ``chat`` (default: when the tokenizer has a chat template) each prompt becomes a user turn followed by
    the assistant header; ``reply_prefix`` (one for all or one per prompt) is then the start of the assistant's
    reply, e.g. ``"The capital of France is"``.

    Example:
        >>> class Plain:
        ...     chat_template = None
        >>> format_prompts(Plain(), ["Q: 2 + 2?"], reply_prefix="A:")
        (['Q: 2 + 2? A:'], False)
    """
    if not prompts or any(not isinstance(p, str) or not p.strip() for p in prompts):
        raise InvalidArgumentError("prompts", prompts, "a non-empty list of non-empty strings")
    prefixes = (
        [reply_prefix or ""] * len(prompts) if reply_prefix is None or isinstance(reply_prefix, str) else reply_prefix
    )
    if len(prefixes) != len(prompts):
        raise InvalidArgumentError(
            "reply_prefix", f"{len(prefixes)} prefixes", f"one, or one per prompt ({len(prompts)})"
        )
    use_chat = getattr(tokenizer, "chat_template", None) is not None if chat is None else chat
    texts = []
    for prompt, prefix in zip(prompts, prefixes, strict=True):
        if use_chat:
            head = tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
            )
            texts.append(head + prefix)
        else:
            texts.append(f"{prompt} {prefix}" if prefix else prompt)
    return texts, use_chat


def _coerce(tokenizer: Any, modulation: ModulationLike) -> Modulation:
    return token_focus(tokenizer, Modulation.coerce(modulation))


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    modulation: ModulationLike | Sequence[Modulation],
    *,
    noise: NoiseSource,
    max_new_tokens: int = 32,
    batch_size: int = 8,
    chat: bool | None = None,
    reply_prefix: Sequence[str] | str | None = None,
    do_sample: bool = False,
    **generate_kwargs: Any,
) -> list[str]:
    """Completions of ``prompts`` under a modulation (one for all, or one per prompt).

    Prompts go through :func:`format_prompts` (chat template when the tokenizer has one, optional reply
    prefix), are left-padded into batches of ``batch_size`` and generated with :class:`AimLogitsProcessor`.
    Focus words are expanded to token ids with :func:`aimod.text.token_focus`. With ``KeyedNoise`` a prompt's
    completion does not depend on the batch it lands in.

    Raises:
        InvalidArgumentError: For an empty prompt list, an empty prompt, or a per-prompt modulation list of the
            wrong length.
    """
    texts, special = format_prompts(tokenizer, prompts, chat=chat, reply_prefix=reply_prefix)
    if isinstance(modulation, (Modulation, str, Mapping)):
        mods = [_coerce(tokenizer, modulation)] * len(prompts)
    else:
        if len(modulation) != len(prompts):
            raise InvalidArgumentError(
                "modulation", f"{len(modulation)} modulations", f"one Modulation or one per prompt ({len(prompts)})"
            )
        mods = [_coerce(tokenizer, m) for m in modulation]
    _check_sizes(batch_size, max_new_tokens)
    completions: list[str] = []
    for start in range(0, len(texts), batch_size):
        rows = _generate_rows(
            model,
            tokenizer,
            texts[start : start + batch_size],
            [[m] for m in mods[start : start + batch_size]],
            special=special,
            noise=noise,
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            **generate_kwargs,
        )
        completions += [tokenizer.decode(r[0], skip_special_tokens=True) for r in rows]
    return completions


def generate_grid(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    modulations: Sequence[ModulationLike],
    *,
    noise: NoiseSource,
    max_new_tokens: int = 32,
    batch_size: int = 8,
    chat: bool | None = None,
    reply_prefix: Sequence[str] | str | None = None,
    do_sample: bool = False,
    **generate_kwargs: Any,
) -> Completions:
    """Completions of every prompt under every modulation, as few ``generate`` calls as the batch allows.

    Each call takes ``batch_size`` prompts, so ``batch_size * len(modulations)`` rows; each prompt's prefill
    runs once for all its rows. With ``KeyedNoise`` every completion equals what :func:`generate` gives for
    that prompt and modulation alone (up to the model's own batch-size rounding, see docs/text.md).

    Example:
        >>> # completions = generate_grid(model, tokenizer, questions, ["sigma=0", "sigma=2", "sigma=4"], noise=...)
        >>> # completions.texts[2][0] is the first question's answer at sigma 4
    """
    texts, special = format_prompts(tokenizer, prompts, chat=chat, reply_prefix=reply_prefix)
    if not modulations or isinstance(modulations, (Modulation, str, Mapping)):
        raise InvalidArgumentError("modulations", modulations, "a non-empty list of modulations")
    mods = [_coerce(tokenizer, m) for m in modulations]
    _check_sizes(batch_size, max_new_tokens)
    ids: list[list[list[int]]] = [[] for _ in mods]
    for start in range(0, len(texts), batch_size):
        rows = _generate_rows(
            model,
            tokenizer,
            texts[start : start + batch_size],
            [mods] * len(texts[start : start + batch_size]),
            special=special,
            noise=noise,
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            **generate_kwargs,
        )
        for per_prompt in rows:
            for m, tokens in enumerate(per_prompt):
                ids[m].append(tokens)
    texts_out = [[tokenizer.decode(t, skip_special_tokens=True) for t in row] for row in ids]
    return Completions(texts_out, ids)


def _check_sizes(batch_size: int, max_new_tokens: int) -> None:
    if batch_size < 1 or max_new_tokens < 1:
        raise InvalidArgumentError("batch_size, max_new_tokens", (batch_size, max_new_tokens), "both >= 1")


def _generate_rows(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    mods: list[list[Modulation]],
    *,
    special: bool,
    noise: NoiseSource,
    max_new_tokens: int,
    do_sample: bool,
    **generate_kwargs: Any,
) -> list[list[list[int]]]:
    """One ``generate`` call: prompt ``p`` repeated ``len(mods[p])`` times; returns new tokens per prompt and row.

    With more than one row per prompt, the prompts (all tokens but the last) are prefilled once into a
    key-value cache that is then repeated for the rows.
    """
    repeats = len(mods[0])
    if generate_kwargs.get("num_return_sequences", 1) != 1:
        raise InvalidArgumentError(
            "num_return_sequences",
            generate_kwargs["num_return_sequences"],
            "1 here (one completion per prompt and modulation)",
            "Call model.generate with an AimLogitsProcessor for several sequences per prompt.",
        )
    pad = pad_id(tokenizer)
    ids, mask = encode_left_padded(tokenizer, texts, add_special_tokens=not special)
    device = next(model.parameters()).device
    ids, mask = ids.to(device), mask.to(device)
    processor = AimLogitsProcessor([m for row in mods for m in row], noise=noise, pad_token_id=pad)
    kwargs: dict[str, Any] = {}
    with torch.no_grad():
        if repeats > 1 and ids.shape[1] > 1 and generate_kwargs.get("num_beams", 1) == 1:
            kwargs["past_key_values"] = _shared_prefill(model, ids[:, :-1], mask[:, :-1], repeats)
        out = model.generate(
            input_ids=ids.repeat_interleave(repeats, 0),
            attention_mask=mask.repeat_interleave(repeats, 0),
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            logits_processor=[processor],
            pad_token_id=pad,
            **kwargs,
            **generate_kwargs,
        )
    new = out[:, ids.shape[1] :].tolist()
    eos = eos_ids(model, tokenizer)
    rows = [_until_eos(tokens, eos) for tokens in new]
    return [rows[p * repeats : (p + 1) * repeats] for p in range(len(texts))]


def _shared_prefill(model: Any, ids: torch.Tensor, mask: torch.Tensor, repeats: int) -> Any:
    """A key-value cache of the prompts' forward pass, each prompt's entries repeated ``repeats`` times."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    model(input_ids=ids, attention_mask=mask, position_ids=positions(mask), past_key_values=cache, use_cache=True)
    cache.batch_repeat_interleave(repeats)
    return cache


def _until_eos(tokens: list[int], eos: set[int]) -> list[int]:
    for i, token in enumerate(tokens):
        if token in eos:
            return tokens[: i + 1]
    return tokens
