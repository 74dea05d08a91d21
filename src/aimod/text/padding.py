"""Left padding for batched decoding: pad and end-of-sequence tokens, padded batches, position ids.

The one place that pads prompts for generation, scoring and the server.

The pad token is the tokenizer's pad token, else its eos token (as ``generate`` does). Padding sits under an
attention mask of 0 and is excluded from row keys, so its value never changes an output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from aimod.errors import InvalidArgumentError

__all__ = ["encode_left_padded", "eos_ids", "left_pad", "pad_id", "positions"]


def pad_id(tokenizer: Any) -> int:
    """The token that pads: the tokenizer's pad token, else its eos token.

    Raises:
        InvalidArgumentError: For a tokenizer with neither.
    """
    for token in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token is not None:
            return int(token)
    raise InvalidArgumentError("tokenizer", "a tokenizer with neither a pad nor an eos token", "one with either")


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every token that ends a sequence: the model's generation config's eos id(s) and the tokenizer's."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = {int(e) for e in (configured if isinstance(configured, list) else [configured]) if e is not None}
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


def left_pad(rows: Sequence[Sequence[int]], pad: int) -> tuple[Tensor, Tensor]:
    """``(input_ids, attention_mask)`` of token rows, left-padded with ``pad`` to the longest.

    Example:
        >>> ids, mask = left_pad([[5, 6], [7]], pad=0)
        >>> ids.tolist(), mask.tolist()
        ([[5, 6], [0, 7]], [[1, 1], [0, 1]])
    """
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.int64)
    mask = torch.zeros((len(rows), width), dtype=torch.int64)
    for i, row in enumerate(rows):
        if len(row):
            ids[i, width - len(row) :] = torch.tensor(list(row), dtype=torch.int64)
            mask[i, width - len(row) :] = 1
    return ids, mask


def encode_left_padded(tokenizer: Any, texts: Sequence[str], *, add_special_tokens: bool) -> tuple[Tensor, Tensor]:
    """``(input_ids, attention_mask)`` of ``texts``, left-padded with :func:`left_pad`.

    A tokenizer without a pad token (GPT-2, Llama) pads with its eos token (:func:`pad_id`).
    """
    rows = [tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"] for text in texts]
    return left_pad(rows, pad_id(tokenizer))


def positions(mask: Tensor) -> Tensor:
    """Position ids of left-padded rows: 0 at each row's first real token (and on its padding).

    Example:
        >>> import torch
        >>> positions(torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])).tolist()
        [[0, 0, 0, 1], [0, 1, 2, 3]]
    """
    return (mask.cumsum(-1) - 1).clamp(min=0)
