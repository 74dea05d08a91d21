"""Shared helpers for the theory tests: Monte Carlo through the library's own operator, and references."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

import aimod
from aimod import Modulation


def simulate(logits: Tensor, modulation: Modulation, repeats: int, seed: int) -> Tensor:
    """Monte Carlo decision frequencies ``(N, K)``: each row modulated ``repeats`` times by modulate_logits."""
    rows, classes = logits.shape
    noisy = aimod.modulate_logits(logits.repeat(repeats, 1), modulation, noise=aimod.SeededNoise(seed))
    decisions = noisy.argmax(1).view(repeats, rows).T  # (N, repeats)
    counts = torch.zeros(rows, classes, dtype=torch.float64)
    counts.scatter_add_(1, decisions.contiguous(), torch.ones(rows, repeats, dtype=torch.float64))
    return counts / repeats


@functools.lru_cache(maxsize=4)
def _legendre(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(nodes)  # type: ignore[no-any-return]


def reference_probability(logits: Tensor, sigma: float, classes: Tensor, nodes: int = 400) -> Tensor:
    """P(argmax(z + sigma*eps) == c) by a plain high-order rule: ``nodes``-point Gauss–Legendre on [-10, 10] in u,
    all classes, float64, ``log_ndtr``. Independent of the library's rules. Shape ``(N,)``."""
    x, w = _legendre(nodes)
    u = torch.tensor(10.0 * x)
    weight = torch.tensor(10.0 * w) * torch.exp(-0.5 * u * u) / math.sqrt(2 * math.pi)
    z = logits.double()
    gaps = (z.gather(1, classes[:, None]) - z) / sigma  # (N, K)
    log_cdf = torch.special.log_ndtr(u[None, :, None] + gaps[:, None, :])  # (N, Q, K)
    own = torch.special.log_ndtr(u)[None, :]  # the class itself has gap 0: remove its factor
    return (weight * torch.exp(log_cdf.sum(2) - own)).sum(1)


def trained_like_logits(samples: int, classes: int, seed: int) -> Tensor:
    """Seeded logits resembling a trained classifier: families of similar classes, a clear top class often."""
    gen = torch.Generator().manual_seed(seed)
    dim, family = 64, 10
    centres = torch.randn(-(-classes // family), dim, generator=gen)
    embed = centres.repeat_interleave(family, 0)[:classes] + 0.8 * torch.randn(classes, dim, generator=gen)
    embed = embed / embed.norm(dim=1, keepdim=True)
    labels = torch.randint(classes, (samples,), generator=gen)
    features = embed[labels] + 0.3 * torch.randn(samples, dim, generator=gen)
    features = features / features.norm(dim=1, keepdim=True)
    return 30.0 * features @ embed.T
