r"""Nested tier noise: utility noise as a keyed Brownian motion in the variance.

A tier at utility std σ adds ``B(σ²)`` to every logit, where ``B`` is one standard Brownian motion per (row
key, position, class), drawn from keyed normals. So every tier's noise is exactly ``N(0, σ²)`` per logit, as the
theory assumes, and for two tiers ``σ₁ < σ₂`` the lower tier's noise is the higher tier's plus an independent
increment: ``B(σ₂²) = B(σ₁²) + (B(σ₂²) − B(σ₁²))`` with the increment independent of ``B(σ₁²)``. A tenant who
holds answers from several tiers for one query therefore knows nothing more than the best of those tiers
tells: the others are that answer plus noise it could have drawn itself (docs/theory.md proves it).

The path is the same for every σ, so a tier added to a running deployment is one more point on the same path
and changes nothing for the tiers already served. It is built by Lévy's construction on a fixed grid of
``2^LEVELS + 1`` variances: ``t_0 = 0`` and ``t_1 .. t_N`` geometric from ``2^-32`` to ``2^32`` (σ from
``2^-16`` to ``2^16``, one cell per 0.034 % of σ). ``B(t_N) = √t_N·ξ``; each level halves the grid interval
that holds ``t`` with the Brownian bridge
``B(t_m) = B(t_a) + (t_m − t_a)/(t_b − t_a)·(B(t_b) − B(t_a)) + √((t_m − t_a)(t_b − t_m)/(t_b − t_a))·ξ_m``;
a last bridge step reaches ``t`` inside its cell. Every ``ξ`` is a keyed normal named by its grid node, so a
point costs ``LEVELS + 2`` normals and the values at the grid nodes are exactly a Brownian motion. Two tiers in
one cell (σ within 0.034 % of each other) share that cell's last normal: each is still exactly ``N(0, σ²)``,
but they are not a chain with each other (:func:`same_cell` tells; the server refuses such tier pairs).
Beyond ``t_N`` the path goes on with one more independent increment. ``B(t)`` is a weighted sum of 18 bounded
keyed normals, so it is bounded by ``5.42·Σ|weights|`` (larger than ``5.42·σ``), not by ``5.42·σ`` itself.

Example:
    >>> import torch
    >>> from aimod.noise import KeyedNoise
    >>> seeds = KeyedNoise("a long owner secret").row_seeds(2, torch.tensor([1, 1]), torch.device("cpu"))
    >>> low, high = brownian(seeds, 1, 4, torch.tensor([1.0, 4.0]))
    >>> low.shape, bool(torch.equal(brownian(seeds[:1], 1, 4, torch.tensor([1.0]))[0], low))
    (torch.Size([1, 4]), True)
    >>> bool((brownian(seeds, 1, 4, torch.zeros(2)) == 0).all())   # sigma 0: no noise
    True
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from aimod._hash import GOLDEN, mix64, signed64
from aimod.noise import UTILITY_STREAM, normals

__all__ = ["LEVELS", "brownian", "grid_variance", "same_cell"]

LEVELS = 16
"""Depth of the grid: ``2^LEVELS`` cells."""
_N = 1 << LEVELS
_LOG2_LO, _LOG2_HI = -32.0, 32.0  # log2 of the variances t_1 and t_N
_CHAIN = signed64(0xD1B54A32D192ED03)
_CELL_NODE = _N + 1  # node ids: 1.._N grid points, _N + 1 + j the last bridge in cell j, 2 * _N + 2 beyond t_N
_BEYOND_NODE = 2 * _N + 2


def grid_variance(index: Tensor) -> Tensor:
    """The grid's variances ``t_i`` (float64) at integer indices ``0 .. 2^LEVELS``.

    Example:
        >>> grid_variance(torch.tensor([0, 1, 1 << LEVELS])).tolist() == [0.0, 2.0**-32, 2.0**32]
        True
    """
    i = index.to(torch.float64)
    step = (_LOG2_HI - _LOG2_LO) / (_N - 1)
    return torch.where(index > 0, torch.exp2(_LOG2_LO + (i - 1) * step), torch.zeros_like(i))


def _cells(t: Tensor) -> Tensor:
    """Index ``j`` of the grid cell ``[t_j, t_{j+1}]`` holding each variance (``_N`` beyond the grid)."""
    t = t.to(torch.float64)
    step = (_LOG2_HI - _LOG2_LO) / (_N - 1)
    guess = torch.floor((torch.log2(t.clamp(min=2.0**-1074)) - _LOG2_LO) / step).to(torch.int64) + 1
    j = guess.clamp(0, _N - 1)
    j = torch.where(grid_variance(j) > t, j - 1, j).clamp(0, _N - 1)  # correct the rounding of log2
    j = torch.where(grid_variance(j + 1) <= t, j + 1, j)
    return torch.where(t >= grid_variance(torch.tensor(_N)), torch.full_like(j, _N), torch.where(t <= 0, 0, j))


def same_cell(sigma_a: float, sigma_b: float) -> bool:
    """True when two distinct σ fall in one grid cell, so that their noises are not a chain with each other.

    Example:
        >>> same_cell(1.0, 1.0001), same_cell(1.0, 1.01), same_cell(1.0, 1.0)
        (True, False, False)
    """
    if sigma_a == sigma_b:
        return False
    ja, jb = _cells(torch.tensor([sigma_a**2, sigma_b**2], dtype=torch.float64)).tolist()
    return bool(ja == jb and not (sigma_a == 0 or sigma_b == 0))


def _node_normals(row_seeds: Tensor, node: Tensor, num_positions: int, num_classes: int) -> Tensor:
    """The keyed normals ``ξ`` of one grid node per row: ``(B, P, C)``."""
    seeds = mix64((row_seeds ^ _CHAIN) + node.to(torch.int64) * GOLDEN)
    return normals(seeds, num_positions, num_classes, UTILITY_STREAM)


def _column(x: Tensor) -> Tensor:
    return x.to(torch.float32)[:, None, None]


def brownian(row_seeds: Tensor, num_positions: int, num_classes: int, variance: Tensor) -> Tensor:
    """``B(t)`` for every (row, position, class) at each row's variance ``t`` (``σ²``): float32 ``(B, P, C)``.

    Args:
        row_seeds: ``(B,)`` int64 from a noise source.
        num_positions: ``P``.
        num_classes: ``C``.
        variance: ``(B,)`` variances ``σ²`` per row, ``>= 0``.

    Each row's values are ``N(0, t)``; for one row seed, the values at two variances ``t₁ < t₂`` differ by an
    increment independent of the first (exactly, unless :func:`same_cell`).
    """
    device = row_seeds.device
    t = variance.to(device=device, dtype=torch.float64)
    cell = _cells(t)
    top = grid_variance(torch.tensor(_N, device=device))
    root = _node_normals(row_seeds, torch.full_like(cell, _N), num_positions, num_classes)
    b_low = torch.zeros_like(root)
    b_high = root.mul_(math.sqrt(float(top)))
    low = torch.zeros_like(cell)
    high = torch.full_like(cell, _N)
    target = cell.clamp(max=_N - 1)
    for _ in range(LEVELS):  # halve the interval [low, high] that holds the target cell
        mid = (low + high) // 2
        t_low, t_mid, t_high = grid_variance(low), grid_variance(mid), grid_variance(high)
        weight = (t_mid - t_low) / (t_high - t_low)
        spread = torch.sqrt((t_mid - t_low) * (t_high - t_mid) / (t_high - t_low))
        b_mid = _node_normals(row_seeds, mid, num_positions, num_classes).mul_(_column(spread))
        b_mid.addcmul_(b_high - b_low, _column(weight)).add_(b_low)
        left = (target < mid)[:, None, None]
        b_high = torch.where(left, b_mid, b_high)
        b_low = torch.where(left, b_low, b_mid)
        low = torch.where(target < mid, low, mid)
        high = torch.where(target < mid, mid, high)
    # the last bridge, from the cell's ends to t (or the increment beyond the grid)
    inside = cell < _N
    t_low, t_high = grid_variance(low), grid_variance(high)
    t_in = torch.minimum(t, t_high)
    weight = torch.where(inside, (t_in - t_low) / (t_high - t_low), torch.ones_like(t))
    spread = torch.where(
        inside,
        torch.sqrt(((t_in - t_low) * (t_high - t_in) / (t_high - t_low)).clamp(min=0)),
        torch.sqrt((t - top).clamp(min=0)),
    )
    node = torch.where(inside, _CELL_NODE + low, torch.full_like(low, _BEYOND_NODE))
    out = _node_normals(row_seeds, node, num_positions, num_classes).mul_(_column(spread))
    out.addcmul_(b_high - b_low, _column(weight)).add_(b_low)
    return out
