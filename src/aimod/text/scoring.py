"""Modulated log-likelihoods: the noise of generation, applied to every scored position of a sequence.

A language model scores a continuation with the logits at each of its positions. Under modulation those
logits get the noise they would get while generating: with :class:`~aimod.KeyedNoise` the key of position
``t`` is the digest of the tokens up to and including ``t`` (:func:`aimod.text.prefix_keys`), the same key
:class:`~aimod.text.AimLogitsProcessor` uses when it picks the token after that prefix. So a multiple-choice
answer scored by log-likelihood and a completion generated greedily see one and the same modulated model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from aimod.errors import InvalidArgumentError
from aimod.modulation import Modulation
from aimod.noise import NoiseSource
from aimod.redistribute import ModulationBatch, modulate_logits
from aimod.text.padding import encode_left_padded, left_pad, pad_id, positions
from aimod.text.processor import prefix_keys

_CHUNK = 1 << 24  # logits per modulation call in modulate_sequence_logits (64 MB of float32)

__all__ = ["ChoiceLogits", "choice_loglikelihoods", "choice_logits", "modulate_sequence_logits", "next_token_logits"]


def modulate_sequence_logits(
    logits: Tensor,
    input_ids: Tensor,
    modulation: Modulation | Sequence[Modulation] | ModulationBatch,
    *,
    noise: NoiseSource,
    pad_token_id: int | None = None,
) -> Tensor:
    """Modulates every position of ``logits`` ``(B, T, V)``, each keyed on its own token prefix.

    Args:
        logits: A causal LM's logits for ``input_ids``; position ``t`` predicts token ``t + 1``.
        input_ids: ``(B, T)`` tokens.
        modulation: One Modulation, one per row, or a ModulationBatch for ``B`` rows; focus keys are token ids.
        noise: ``KeyedNoise`` or ``SeededNoise``; both are keyed here by each position's prefix, so the
            result does not depend on the batch or on the padding to the right of a position.
        pad_token_id: Leading tokens equal to it are left padding.

    Example:
        >>> import aimod
        >>> from aimod.text import AimLogitsProcessor
        >>> ids, z = torch.tensor([[3, 1, 4]]), torch.randn(1, 3, 10)
        >>> noise, mod = aimod.KeyedNoise("k"), aimod.Modulation(sigma=1.0)
        >>> out = modulate_sequence_logits(z, ids, mod, noise=noise)
        >>> torch.equal(out[:, 1], AimLogitsProcessor(mod, noise=noise)(ids[:, :2], z[:, 1]))
        True
    """
    if logits.ndim != 3 or input_ids.shape != logits.shape[:2]:
        raise InvalidArgumentError(
            "logits, input_ids",
            f"shapes {tuple(logits.shape)} and {tuple(input_ids.shape)}",
            "(B, T, V) logits for (B, T) token ids",
        )
    batch, steps, vocab = logits.shape
    plan = ModulationBatch.build(modulation, batch, vocab)
    if plan.is_identity:
        return logits.clone()
    keys = prefix_keys(input_ids, pad_token_id)
    out = torch.empty_like(logits)
    rows = max(1, _CHUNK // (steps * vocab))  # bounds the noise's temporaries, whatever the batch
    for start in range(0, batch, rows):
        stop = min(start + rows, batch)
        part = plan.rows_between(start, stop).repeat_rows(steps)
        z = logits[start:stop].reshape(-1, vocab)
        modulated = modulate_logits(z, part, noise=noise, keys=keys[start:stop].reshape(-1), check_finite=False)
        out[start:stop] = modulated.view(stop - start, steps, vocab)
    return out


@dataclass(frozen=True)
class ChoiceLogits:
    """The clean logits a multiple-choice evaluation scores, computed once and modulated many times.

    Only the positions that predict a continuation token are kept, once per distinct prefix (the first
    token of every choice of an item shares the context's last position).
    """

    logits: Tensor
    """``(R, V)`` float32 clean logits of the distinct scored prefixes."""
    keys: Tensor
    """``(R,)`` int64 prefix keys (:func:`aimod.text.prefix_keys`) of those rows."""
    row: Tensor
    """``(S,)`` for every scored token: its row in ``logits``."""
    target: Tensor
    """``(S,)`` the scored token ids."""
    choice: Tensor
    """``(S,)`` the flat index ``item * width + choice`` each scored token belongs to."""
    shape: tuple[int, int]
    """``(N, width)``: items and the largest number of choices."""

    def loglikelihoods(self, modulation: Modulation, *, noise: NoiseSource) -> Tensor:
        """``(N, width)`` float64 summed log-probabilities of each choice under ``modulation`` (``-inf`` pads).

        Focus keys must be token ids here (:func:`aimod.text.token_focus` turns words into them).
        """
        z = modulate_logits(self.logits, modulation, noise=noise, keys=self.keys, check_finite=False)
        logprobs = torch.log_softmax(z.double(), dim=-1)
        token_scores = logprobs[self.row, self.target]
        out = torch.zeros(self.shape[0] * self.shape[1], dtype=torch.float64).index_add_(0, self.choice, token_scores)
        present = torch.zeros_like(out, dtype=torch.bool).index_fill_(0, self.choice, True)
        return out.masked_fill_(~present, float("-inf")).view(self.shape)


def choice_logits(
    model: Any,
    tokenizer: Any,
    contexts: Sequence[str],
    choices: Sequence[Sequence[str]],
    *,
    batch_size: int = 16,
    add_special_tokens: bool = False,
) -> ChoiceLogits:
    """The logits every ``context + " " + choice`` is scored on, from one forward pass per context.

    Each context runs once (left-padded, into a key-value cache); its choices' tokens then run on copies of
    that cache, so an item with four choices costs one context pass, not four. The contexts already hold any
    chat template and reply prefix (see :func:`aimod.text.format_prompts`); ``add_special_tokens`` adds the
    tokenizer's own (a BOS token, say) to plain-text contexts. ``batch_size`` counts sequences (context x
    choice) per forward pass.
    """
    from transformers import DynamicCache

    if len(contexts) != len(choices) or not contexts or any(not c for c in choices):
        raise InvalidArgumentError(
            "contexts, choices",
            (len(contexts), len(choices)),
            "two non-empty lists of one length, each item with choices",
        )
    device = next(model.parameters()).device
    width = max(len(options) for options in choices)
    pad = pad_id(tokenizer)
    index: dict[int, int] = {}  # prefix key -> row
    kept: list[Tensor] = []
    rows, targets, owners = [], [], []
    per_chunk = max(1, batch_size // width)
    for start in range(0, len(contexts), per_chunk):
        items = list(range(start, min(start + per_chunk, len(contexts))))
        heads = [tokenizer(contexts[i], add_special_tokens=add_special_tokens)["input_ids"] for i in items]
        tails = [[tokenizer(" " + c, add_special_tokens=False)["input_ids"] for c in choices[i]] for i in items]
        n = len(items)
        lk = max(len(t) for per in tails for t in per)
        # 1. the contexts, left-padded, into a cache; their last position predicts every choice's first token
        cids, cmask = left_pad(heads, pad)
        cache = DynamicCache(config=model.config)
        with torch.no_grad():
            out = model(
                input_ids=cids.to(device),
                attention_mask=cmask.to(device),
                position_ids=positions(cmask).to(device),
                past_key_values=cache,
                use_cache=True,
            )
        first = out.logits[:, -1].float().cpu()  # (n, V)
        # 2. every choice's tokens on a copy of its context's cache, right-padded
        later = None
        if lk > 1:
            kids = torch.full((n * width, lk), pad, dtype=torch.int64)
            kmask = torch.zeros_like(kids)
            for r, per in enumerate(tails):
                for j, t in enumerate(per):
                    kids[r * width + j, : len(t)] = torch.tensor(t)
                    kmask[r * width + j, : len(t)] = 1
            cache.batch_repeat_interleave(width)
            lengths = torch.tensor([len(h) for h in heads]).repeat_interleave(width)
            with torch.no_grad():
                later = (
                    model(
                        input_ids=kids.to(device),
                        attention_mask=torch.cat([cmask.repeat_interleave(width, 0), kmask], 1).to(device),
                        position_ids=(lengths[:, None] + torch.arange(lk)[None, :]).to(device),
                        past_key_values=cache,
                        use_cache=True,
                    )
                    .logits.float()
                    .cpu()
                )  # (n * width, lk, V)
        # keys of the unpadded sequences (right padding never changes an earlier position's key)
        for r, (i, per) in enumerate(zip(items, tails, strict=True)):
            for j, t in enumerate(per):
                sequence = torch.tensor([heads[r] + t])
                keys = prefix_keys(sequence)[0]
                ctx = len(heads[r])
                for k, token in enumerate(t):
                    key = int(keys[ctx - 1 + k])
                    if key not in index:
                        index[key] = len(kept)
                        kept.append(first[r] if k == 0 else later[r * width + j, k - 1])  # type: ignore[index]
                    rows.append(index[key])
                    targets.append(int(token))
                    owners.append(i * width + j)
    return ChoiceLogits(
        logits=torch.stack(kept),
        keys=torch.tensor(list(index), dtype=torch.int64),
        row=torch.tensor(rows, dtype=torch.int64),
        target=torch.tensor(targets, dtype=torch.int64),
        choice=torch.tensor(owners, dtype=torch.int64),
        shape=(len(contexts), width),
    )


def choice_loglikelihoods(
    model: Any,
    tokenizer: Any,
    contexts: Sequence[str],
    choices: Sequence[Sequence[str]],
    modulation: Modulation,
    *,
    noise: NoiseSource,
    batch_size: int = 16,
    add_special_tokens: bool = False,
) -> Tensor:
    """Log-likelihood of each choice after its context under a modulation: ``(N, K)`` float64.

    Each choice is scored as the continuation ``" " + choice`` of its context, its tokens' log-probabilities
    summed from the modulated logits; ``argmax(1)`` is the model's multiple-choice answer. To score many
    modulations, build :func:`choice_logits` once and call its ``loglikelihoods``.
    """
    from aimod.text.focus import token_focus

    scored = choice_logits(
        model, tokenizer, contexts, choices, batch_size=batch_size, add_special_tokens=add_special_tokens
    )
    return scored.loglikelihoods(token_focus(tokenizer, Modulation.coerce(modulation)), noise=noise)


def next_token_logits(
    model: Any, tokenizer: Any, texts: Sequence[str], *, batch_size: int = 16, add_special_tokens: bool = False
) -> Tensor:
    """Clean logits of the token after each text, float64 ``(N, V)``: the first decoding step's decision.

    Texts are left-padded in batches with the position ids generation uses, so each row is the logits
    ``generate`` starts from. The theory turns them into exact first-token probabilities.
    """
    out = []
    device = next(model.parameters()).device
    for start in range(0, len(texts), batch_size):
        ids, mask = encode_left_padded(
            tokenizer, texts[start : start + batch_size], add_special_tokens=add_special_tokens
        )
        ids, mask = ids.to(device), mask.to(device)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions(mask)).logits
        out.append(logits[:, -1].double().cpu())
    return torch.cat(out)
