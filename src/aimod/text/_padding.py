"""Left padding for batched decoding: the one place that encodes prompts and derives their position ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

__all__ = ["encode_left_padded", "positions"]


def encode_left_padded(tokenizer: Any, texts: Sequence[str], *, add_special_tokens: bool) -> tuple[Tensor, Tensor]:
    """``(input_ids, attention_mask)`` of ``texts``, left-padded; the tokenizer's settings are restored after.

    A tokenizer without a pad token (GPT-2, Llama) pads with its eos token, as ``generate`` does.
    """
    side, pad_token = tokenizer.padding_side, tokenizer.pad_token
    tokenizer.padding_side = "left"
    if pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    try:
        encoded = tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=add_special_tokens)
    finally:
        tokenizer.padding_side, tokenizer.pad_token = side, pad_token
    return encoded["input_ids"], encoded["attention_mask"]


def positions(mask: Tensor) -> Tensor:
    """Position ids of left-padded rows: 0 at each row's first real token (and on its padding).

    Example:
        >>> import torch
        >>> positions(torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])).tolist()
        [[0, 0, 0, 1], [0, 1, 2, 3]]
    """
    return (mask.cumsum(-1) - 1).clamp(min=0)
