"""The repeated-query attack on a tier: ask the same (or a nearly the same) input many times, keep the majority.

Against fresh noise per query the majority converges to the clean decision, so a client undoes a tier by
paying for more queries; against keyed noise every copy gets the same answer. These helpers are shared by
``aimod demo`` and ``benchmarks/bench_repeated_query.py``.

Example:
    >>> import torch
    >>> majority_vote(torch.tensor([[1, 1, 0], [2, 0, 0]]), num_classes=3)
    tensor([1, 0])
    >>> images = torch.zeros(2, 4, 4, dtype=torch.uint8)
    >>> changed = perturb_pixels(images, "gauss", 2.0, torch.Generator().manual_seed(0))
    >>> changed.dtype, changed.shape, bool((changed != images).any())
    (torch.uint8, torch.Size([2, 4, 4]), True)
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from aimod.errors import InvalidArgumentError

__all__ = ["majority_vote", "perturb_pixels"]


def majority_vote(decisions: Tensor, num_classes: int) -> Tensor:
    """``(inputs, queries)`` class ids -> ``(inputs,)`` the most frequent one (the smallest id on ties)."""
    if decisions.ndim != 2:
        raise InvalidArgumentError("decisions", f"a tensor of shape {tuple(decisions.shape)}", "(inputs, queries)")
    if decisions.numel() and (int(decisions.min()) < 0 or int(decisions.max()) >= num_classes):
        raise InvalidArgumentError("decisions", "class ids out of range", f"ids in 0..{num_classes - 1}")
    counts = torch.zeros(decisions.shape[0], num_classes, dtype=torch.int64)
    counts.scatter_add_(1, decisions.to(torch.int64), torch.ones_like(decisions, dtype=torch.int64))
    return counts.argmax(1)


def perturb_pixels(
    images: Tensor, kind: Literal["pixels", "gauss"], size: float, generator: torch.Generator, *, count: int = 4
) -> Tensor:
    """A near-duplicate of each uint8 image, rounded and clipped to 0..255.

    ``"pixels"`` moves ``count`` random pixels by ``±size``; ``"gauss"`` adds Gaussian noise of std ``size`` to
    every pixel.
    """
    if images.dtype != torch.uint8:
        raise InvalidArgumentError("images", f"dtype {images.dtype}", "uint8 pixels")
    x = images.to(torch.int16)
    if kind == "pixels":
        flat = x.reshape(x.shape[0], -1).clone()
        where = torch.randint(0, flat.shape[1], (flat.shape[0], count), generator=generator)
        sign = torch.randint(0, 2, (flat.shape[0], count), generator=generator) * 2 - 1
        flat.scatter_add_(1, where, (sign * round(size)).to(torch.int16))
        x = flat.view_as(x)
    elif kind == "gauss":
        x = x + (torch.randn(x.shape, generator=generator) * size).round().to(torch.int16)
    else:
        raise InvalidArgumentError("kind", kind, "'pixels' or 'gauss'")
    return x.clamp(0, 255).to(torch.uint8)
