"""Compression of many Gaussian classes into a few weighted points, for ``Σ_j log Φ(u + Δ_j/σ)``.

The CDF of the maximum of many Gaussian logits is ``∏_j Φ(u + Δ_j/σ)`` where ``Δ_j`` are the gaps to a reference
logit. Summing ``log Φ`` over thousands of classes at every quadrature node is the cost of the whole theory,
so the gaps of a row are sorted once and, for each sigma, cut into bins of width at most ``0.3·σ``; every bin is
replaced by the two-point Gauss rule of its own points (same count, mean, variance and third moment).
``log Φ`` is smooth on the scale of one unit of ``u``, so the error is of fourth order in the bin width (about
1e-5 relative on 1000 to 150,000 classes); a bin of one or two classes is exact. Bin moments come from prefix
sums of the sorted gaps, so a sigma costs O(bins), not O(K).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["BIN_WIDTH", "SortedGaps", "bin_width", "compress", "log_cdf_sum"]

BIN_WIDTH = 0.3
"""Largest bin width, in units of sigma."""
_SQRT_HALF = math.sqrt(0.5)


class SortedGaps:
    """The values of each row sorted ascending, with prefix sums of their powers 1 to 3.

    Args:
        gaps: ``(n, J)`` float64 values, any sign.
        is_sorted: True if each row is already sorted ascending.
    """

    def __init__(self, gaps: Tensor, *, is_sorted: bool = False) -> None:
        self.sorted = (gaps if is_sorted else gaps.sort(1).values).contiguous()  # (n, J)
        self.ref = self.sorted[:, :1]  # smallest value, (n, 1)
        shifted = self.sorted - self.ref  # >= 0, so the prefix sums of a bin near ref stay small and exact
        self.moments = torch.zeros(3, shifted.shape[0], shifted.shape[1] + 1, dtype=torch.float64)
        power = shifted.clone()
        for k in range(3):
            torch.cumsum(power, 1, out=self.moments[k, :, 1:])
            power.mul_(shifted)


def bin_width(sigma: float) -> float:
    """The bin width for ``sigma``: ``0.3·σ`` rounded down to a quarter octave, so nearby sigmas share bins."""
    return float(2.0 ** (math.floor(4.0 * math.log2(max(BIN_WIDTH * sigma, 1e-300))) / 4.0))


def compress(gaps: SortedGaps, width: float, limit: float, floor: float = -math.inf) -> tuple[Tensor, Tensor]:
    """Two-point Gauss rule per bin of gaps.

    Args:
        gaps: Sorted gaps of ``n`` rows.
        width: Bin width, in the units of the gaps.
        limit: Gaps above this are dropped (their ``Φ`` is 1 at every node that matters).
        floor: Bins start at ``max(smallest gap, floor)``; gaps below it are dropped. Rows with such gaps
            get meaningless points: the caller reports them itself (a competitor that far ahead means
            probability 0), and the number of bins stays ``(limit - floor)/width`` whatever the gaps.

    Returns:
        ``(nodes, weights)``, each ``(n, P)`` float64; nodes ascending along a row, in the units of the gaps.
        Padding has weight 0 and node ``2·limit + 1``.

    Example:
        >>> nodes, weights = compress(SortedGaps(torch.tensor([[0.0, 0.1, 0.2, 5.0]], dtype=torch.float64)), 1.0, 9.0)
        >>> [round(x, 4) for x in nodes[0].tolist()], weights[0].tolist()
        ([0.0184, 0.1816, 5.0, 5.0], [1.5, 1.5, 0.5, 0.5])
    """
    ref = gaps.ref  # (n, 1)
    start = ref.clamp(min=floor)
    span = (torch.clamp(gaps.sorted[:, -1:], max=limit) - start).clamp(min=0.0)
    bins = max(1, math.ceil(float(span.max()) / width) + 1) if span.numel() else 1
    edges = start + width * torch.arange(bins + 1, dtype=torch.float64)  # (n, B+1)
    index = torch.searchsorted(gaps.sorted, edges)  # values in [edge_b, edge_b+1) go to bin b
    count = (index[:, 1:] - index[:, :-1]).to(torch.float64)  # (n, B)
    prefix = gaps.moments.gather(2, index[None].expand(3, -1, -1))  # (3, n, B+1)
    sums = prefix[:, :, 1:] - prefix[:, :, :-1]  # (3, n, B): sums of (value - ref)^k over each bin
    n = count.clamp(min=1.0)
    mean = sums[0] / n
    second = sums[1] / n
    variance = (second - mean * mean).clamp(min=0.0)
    third = sums[2] / n - 3.0 * mean * second + 2.0 * mean**3  # central third moment
    # Nodes mean + r± where r± are the roots of r² - (m3/v)·r - v; near-point bins keep one node.
    point = variance <= 1e-6 * width * width
    safe_var = torch.where(point, 1.0, variance)
    skew = torch.where(point, 0.0, third / safe_var)
    root = torch.sqrt(skew * skew + 4.0 * safe_var)
    lo_edge = edges[:, :-1] - ref - mean
    r_plus = torch.where(point, 0.0, torch.minimum(0.5 * (skew + root), lo_edge + width))
    r_minus = torch.where(point, 0.0, torch.maximum(0.5 * (skew - root), lo_edge))
    share_plus = torch.where(point, 0.5, -r_minus / (r_plus - r_minus).clamp(min=1e-300))
    centre = ref + mean
    nodes = torch.stack([centre + r_minus, centre + r_plus], 2).flatten(1)  # (n, 2B), ascending
    weight = torch.stack([count * (1.0 - share_plus), count * share_plus], 2).flatten(1)
    keep = (weight > 1e-9) & (nodes <= limit)
    # Move the kept entries to the front, in order, and cut the padding common to all rows.
    rank = keep.cumsum(1) - 1
    size = max(1, int(rank[:, -1].max()) + 1) if rank.numel() else 1
    slot = torch.where(keep, rank, size)  # dropped entries go to a spare column
    packed_nodes = torch.full((nodes.shape[0], size + 1), 2.0 * limit + 1.0, dtype=torch.float64)
    packed_weight = torch.zeros(nodes.shape[0], size + 1, dtype=torch.float64)
    packed_nodes.scatter_(1, slot, nodes)
    packed_weight.scatter_(1, slot, weight)
    return packed_nodes[:, :size], packed_weight[:, :size]


def log_cdf_sum(u: Tensor, position: Tensor, weight: Tensor) -> Tensor:
    """``Σ_k weight_k · log Φ(u + position_k)`` for every row and node, shape ``(n, Q)``, float64.

    The bulk of the work, done in float32. Up to 2048 classes per row it uses ``log(erfc(-y/√2)/2)``, whose
    rounding of ``Φ ≈ 1`` adds at most 3e-8 per class. Beyond that it uses the slower
    ``log1p(-erfc(y/√2)/2)``: the upper tail keeps its relative precision, so a bin of 100,000 classes with
    ``Φ ≈ 1 - 1e-5`` adds no bias; where ``Φ < 1e-7`` the float32 value is inexact (down to -inf), which moves
    the product by less than 1e-7 since the product is at most ``Φ`` there. Entries of weight 0 must have
    ``u + position`` above -5 at every node, so that they add exactly 0.

    Args:
        u: Nodes ``(n, Q)``, float64.
        position: Points ``(n, P)``, float64.
        weight: Their weights ``(n, P)``, >= 0.
    """
    many = weight.numel() > 0 and float(weight.sum(1).max()) > 2048
    sign = 1.0 if many else -1.0
    arg = (sign * _SQRT_HALF * u).to(torch.float32)[:, :, None] + (sign * _SQRT_HALF * position).to(torch.float32)[
        :, None, :
    ]
    if many:
        # Capping u + x at 8.5 (1 - Φ = 1e-17) keeps erfc out of float32 denormals, which are slow on x86.
        log_cdf = torch.special.erfc(arg.clamp_(max=6.0)).mul_(-0.5).log1p_()  # (n, Q, P)
    else:
        # Capping y below at -12.7 keeps log finite (-inf times a zero weight would be NaN).
        log_cdf = torch.special.erfc(arg.clamp_(max=9.0)).mul_(0.5).log_()  # (n, Q, P)
    return torch.bmm(log_cdf, weight.to(torch.float32)[:, :, None])[:, :, 0].to(torch.float64)
