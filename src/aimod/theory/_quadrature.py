"""Quadrature rules: Gauss–Legendre nodes and composite rules graded towards breakpoints.

The decision probabilities are one-dimensional integrals ``∫ f_c(t) ∏_{j≠c} F_j(t) dt`` whose integrands are
smooth except near a few known points: the clean logits of focused classes (where a half-normal starts, or a
skew-normal turns sharply when its utility sigma is small) and the largest non-focused logit (where the
point masses of pure focus sit, and near which the Gaussian factors switch on). :func:`graded_panels` puts
panel ends at those breakpoints and at distances ``h, 2h, 4h, ...`` on either side of each, so every panel
is no wider than its distance to the nearest breakpoint and a fixed-order Gauss–Legendre rule on each panel
converges quickly, whatever the ratio of the feature width ``h`` to the length of the interval.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["gauss_legendre", "graded_panels"]

_MAX_LEVELS = 64


@functools.lru_cache(maxsize=16)
def _legendre(order: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    nodes, weights = np.polynomial.legendre.leggauss(order)
    return tuple(float(x) for x in nodes), tuple(float(w) for w in weights)


def gauss_legendre(order: int, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """Gauss–Legendre nodes and weights on ``[-1, 1]``, each of shape ``(order,)``.

    Example:
        >>> nodes, weights = gauss_legendre(3)
        >>> round(float((weights * nodes**4).sum()), 12)  # exact for polynomials of degree <= 5: ∫x⁴ = 2/5
        0.4
    """
    nodes, weights = _legendre(order)
    return torch.tensor(nodes, dtype=dtype), torch.tensor(weights, dtype=dtype)


def graded_panels(
    lo: Tensor, hi: Tensor, breaks: Tensor, scale: Tensor, order: int, *, smooth: bool = False
) -> tuple[Tensor, Tensor]:
    """Nodes and weights of a composite Gauss–Legendre rule on ``[lo, hi]``, graded towards breakpoints.

    Panel ends are ``lo``, ``hi``, every breakpoint ``b`` and ``b ± scale·2^k`` for ``k = 0, 1, ...`` until the
    whole interval is covered (these rounded to multiples of ``scale/4`` from ``lo``), clipped to ``[lo, hi]``.
    Clipped duplicates give empty panels of weight 0, so
    panels are dropped where every row has one; elsewhere they stay, with weight 0, so that every row gets the
    same number of nodes. Rows with ``hi <= lo`` get all-zero weights.

    Args:
        lo: Lower ends, shape ``(N,)``, float64.
        hi: Upper ends, shape ``(N,)``.
        breaks: Breakpoints, shape ``(N, B)``; non-finite entries are ignored.
        scale: Width of the panels next to a breakpoint, shape ``(N,)``, > 0.
        order: Gauss–Legendre nodes per panel.
        smooth: True when the integrand is smooth at the breakpoints (only its scale changes there): then
            the breakpoints snap to the ``scale/4`` grid too, so crowded breakpoints share panels.

    Returns:
        ``(nodes, weights)``, each of shape ``(N, M)`` with ``M = order x`` the largest number of non-empty
        panels of a row.

    Example:
        >>> one = torch.ones(1, dtype=torch.float64)
        >>> t, w = graded_panels(0 * one, 10 * one, 3 * one[:, None], one, order=8)
        >>> round(float((w * t.exp()).sum() / (math.exp(10) - 1)), 12)  # ∫_0^10 e^t dt, relative
        1.0
    """
    hi = torch.maximum(hi, lo)
    breaks = torch.where(torch.isfinite(breaks), breaks, lo[:, None])
    ratio = ((hi - lo) / scale).max().item() if lo.numel() else 1.0
    levels = min(_MAX_LEVELS, max(1, math.ceil(math.log2(max(ratio, 1.0))) + 1))
    offsets = scale[:, None] * (2.0 ** torch.arange(levels, dtype=lo.dtype))  # (N, L)
    graded = breaks[:, :, None] + torch.cat([-offsets, offsets], 1)[:, None, :]  # (N, B, 2L)
    # Graded ends (not the breakpoints) snap to a grid of scale/4, so where many breakpoints crowd together
    # their graded ends coincide and the empty panels between them are dropped: at most about
    # 4·(hi - lo)/scale + 2·B panels per row, instead of B·2L.
    step = 0.25 * scale[:, None, None]
    graded = lo[:, None, None] + torch.round((graded - lo[:, None, None]) / step) * step
    if smooth:
        breaks = lo[:, None] + torch.round((breaks - lo[:, None]) / step[:, :, 0]) * step[:, :, 0]
    ends = torch.cat([lo[:, None], hi[:, None], breaks, graded.flatten(1)], 1)
    ends = torch.minimum(torch.maximum(ends, lo[:, None]), hi[:, None]).sort(1).values  # (N, P)
    left, right = _drop_empty(ends[:, :-1], ends[:, 1:])
    nodes, weights = gauss_legendre(order, lo.dtype)
    half = 0.5 * (right - left)  # (N, P-1)
    mid = 0.5 * (right + left)
    t = (mid[:, :, None] + half[:, :, None] * nodes).flatten(1)
    w = (half[:, :, None] * weights).flatten(1)
    return t, w


def _drop_empty(left: Tensor, right: Tensor) -> tuple[Tensor, Tensor]:
    """Moves the non-empty panels of each row to the front, in order, and cuts the columns all rows leave empty."""
    keep = right > left
    rank = keep.cumsum(1) - 1
    size = max(1, int(rank[:, -1].max()) + 1) if left.numel() else 1
    slot = torch.where(keep, rank, size)  # empty panels go to a spare column
    packed = left[:, :1].expand(-1, size + 1).repeat(2, 1, 1)  # padding: empty panels at the row's lower end
    packed[0].scatter_(1, slot, left)
    packed[1].scatter_(1, slot, right)
    return packed[0, :, :size], packed[1, :, :size]
