"""Synthetic classifier logits, for demos, benchmarks and tests that need no model.

The generator imitates a trained classifier: the true class gets a margin (sometimes negative, so the
"model" errs), and each sample has its own logit scale (confidence), as real models do.
"""

from __future__ import annotations

import torch
from torch import Tensor

from aimod.errors import InvalidArgumentError

__all__ = ["classifier_logits"]


def classifier_logits(
    num_samples: int,
    num_classes: int,
    *,
    seed: int = 0,
    margin: float = 3.0,
    margin_std: float = 1.2,
) -> tuple[Tensor, Tensor]:
    """Logits and labels of a synthetic classifier.

    ``z = scale · (randn(K) + onehot(y) · m)`` with ``m ~ N(margin, margin_std²)`` and ``scale ~ U(1.5, 3)``
    per sample.

    Args:
        num_samples: N.
        num_classes: K (>= 2).
        seed: Seed of the generator; the same seed gives the same data.
        margin: Mean extra logit of the true class, in units of the noise std before scaling.
        margin_std: Spread of that margin across samples.

    Returns:
        ``(logits, labels)``: float32 ``(N, K)`` and int64 ``(N,)``.

    Example:
        >>> z, y = classifier_logits(1000, 10, seed=0)
        >>> z.shape, y.shape, 0.7 < float((z.argmax(1) == y).float().mean()) < 0.95
        (torch.Size([1000, 10]), torch.Size([1000]), True)
    """
    if num_samples < 1 or num_classes < 2:
        raise InvalidArgumentError(
            "num_samples, num_classes", (num_samples, num_classes), "at least 1 sample and 2 classes"
        )
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (num_samples,), generator=gen)
    logits = torch.randn(num_samples, num_classes, generator=gen)
    margins = margin + margin_std * torch.randn(num_samples, generator=gen)
    logits[torch.arange(num_samples), labels] += margins
    scale = 1.5 + 1.5 * torch.rand(num_samples, 1, generator=gen)
    return logits * scale, labels
