"""Content keys of vision requests (layer 0, beside `aimod.digest`): what makes the same query get the same noise.

* ``exact``: the digest of the decoded pixels (and their shape). Any change to any pixel is a new key, and so
  a fresh noise draw: a client that sends one image many times with tiny changes gets many independent
  answers and can take their majority, which averages the tier away.
* ``fingerprint`` (the default): the digest of a coarse fingerprint of the model's **clean logits**: the
  indices of the top classes and their logits relative to the top one, quantised to ``step``. Near-duplicate
  images have nearly equal logits and so, almost always, the same key and the same answer. Each input's noise
  is still a fresh N(0, σ²) draw as far as that input is concerned (the theory and the tier's agreement are
  unchanged); only inputs whose clean logits agree to within ``step`` share noise. The cost: two distinct
  images with (almost) the same logits get correlated answers, which matters only to someone who sends many
  near-identical inputs, the very pattern this guards against. A logit near a quantisation boundary can give
  two keys, so a near-duplicate attack gets a few draws instead of one: see benchmarks/bench_repeated_query.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from aimod.digest import digest

__all__ = ["TOP_CLASSES", "exact_keys", "fingerprint_keys"]

TOP_CLASSES = 5
"""Classes whose relative logits enter the fingerprint."""


def exact_keys(pixels: list[Tensor]) -> Tensor:
    """One key per decoded image (uint8 ``(C, H, W)``): its shape and every pixel.

    Example:
        >>> a = torch.zeros(3, 4, 4, dtype=torch.uint8)
        >>> b = a.clone(); b[0, 0, 0] = 1
        >>> bool(exact_keys([a])[0] == exact_keys([b])[0])
        False
    """
    rows = [torch.cat([torch.tensor(p.shape, dtype=torch.int64), p.reshape(-1).to(torch.int64)]) for p in pixels]
    return digest(rows)


def fingerprint_keys(logits: Tensor, step: float) -> Tensor:
    """One key per row of clean logits: ``(B, C)`` (classification) or ``(B, C, H, W)`` (segmentation).

    Segmentation logits are first pooled to their per-class mean over pixels, and the argmax of a 4 x 4 grid of
    pooled cells is added to the fingerprint.

    Example:
        >>> z = torch.tensor([[4.0, 1.0, 0.2, -3.0]])
        >>> bool(fingerprint_keys(z, 0.5)[0] == fingerprint_keys(z + 1e-4, 0.5)[0])
        True
        >>> bool(fingerprint_keys(z, 0.5)[0] == fingerprint_keys(z.flip(1), 0.5)[0])
        False
    """
    z = logits.detach().to(torch.float32)
    extra: Tensor | None = None
    if z.ndim == 4:
        extra = F.adaptive_avg_pool2d(z, (4, 4)).argmax(1).reshape(z.shape[0], -1)
        z = z.mean(dim=(2, 3))
    k = min(TOP_CLASSES, z.shape[1])
    values, indices = z.topk(k, dim=1)
    relative = torch.floor((values - values[:, :1]) / step).to(torch.int64)
    parts = [indices.to(torch.int64), relative] + ([extra.to(torch.int64)] if extra is not None else [])
    return digest(torch.cat(parts, dim=1).cpu())
