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

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from aimod._hash import GOLDEN, mix64, signed64
from aimod.noise import UTILITY_STREAM, _class_terms, _normals_from_terms, _position_seeds, normals, normals_at

__all__ = [
    "LEVELS",
    "PairPath",
    "brownian",
    "brownian_at",
    "brownian_bound",
    "brownian_pairs",
    "grid_variance",
    "same_cell",
]

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


def _node_seeds(row_seeds: Tensor, node: Tensor) -> Tensor:
    """The seeds whose keyed normals are the ``ξ`` of one grid node per row: ``(B,)``."""
    return mix64((row_seeds ^ _CHAIN) + node.to(torch.int64) * GOLDEN)


def _node_normals(row_seeds: Tensor, node: Tensor, num_positions: int, num_classes: int) -> Tensor:
    """The keyed normals ``ξ`` of one grid node per row: ``(B, P, C)``."""
    return normals(_node_seeds(row_seeds, node), num_positions, num_classes, UTILITY_STREAM)


@dataclass(frozen=True)
class _Step:
    """One bridge step of every row's path: ``B_new = ξ(node)·spread + (B_high − B_low)·weight + B_low``."""

    node: Tensor
    """(B,) int64 grid node naming the step's normals."""
    weight: Tensor
    """(B,) float64 weight of the bridge (cast to float32 where the values are made)."""
    spread: Tensor
    """(B,) float64 std of the bridge's own normal (cast to float32 likewise)."""
    left: Tensor | None
    """(B,) bool: the new value becomes the interval's upper end (else its lower end); None for the last step."""


def _steps(variance: Tensor, device: torch.device) -> tuple[float, list[_Step]]:
    """Lévy's construction for each row's variance: ``sqrt(t_N)`` (the root's scale) and the 17 bridge steps.

    Only the variances enter: the schedule is the same for every position and class of a row.
    """
    t = variance.to(device=device, dtype=torch.float64)
    cell = _cells(t)
    top = grid_variance(torch.tensor(_N, device=device))
    low = torch.zeros_like(cell)
    high = torch.full_like(cell, _N)
    target = cell.clamp(max=_N - 1)
    steps = []
    for _ in range(LEVELS):  # halve the interval [low, high] that holds the target cell
        mid = (low + high) // 2
        t_low, t_mid, t_high = grid_variance(low), grid_variance(mid), grid_variance(high)
        weight = (t_mid - t_low) / (t_high - t_low)
        spread = torch.sqrt((t_mid - t_low) * (t_high - t_mid) / (t_high - t_low))
        left = target < mid
        steps.append(_Step(mid, weight, spread, left))
        low = torch.where(left, low, mid)
        high = torch.where(left, mid, high)
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
    steps.append(_Step(node, weight, spread, None))
    return math.sqrt(float(top)), steps


def _per_row(x: Tensor) -> Tensor:
    return x[:, None, None]


def _path(
    row_seeds: Tensor,
    variance: Tensor,
    draw: Callable[[Tensor], Tensor],
    spread_rows: Callable[[Tensor], Tensor] = _per_row,
) -> Tensor:
    """``B(t)`` from the keyed normals ``draw(node)`` (float32, a new tensor per call) of each row's nodes.

    ``spread_rows`` takes a per-row ``(B,)`` tensor to the layout of ``draw``'s values: ``(B, 1, 1)`` for
    ``(B, P, X)`` values, a gather for one value per (row, class) pair.
    """

    def _column(x: Tensor) -> Tensor:
        return spread_rows(x.to(torch.float32))

    root_scale, steps = _steps(variance, row_seeds.device)
    root = draw(torch.full_like(steps[0].node, _N))
    b_low = torch.zeros_like(root)
    b_high = root.mul_(root_scale)
    for step in steps[:-1]:
        b_mid = draw(step.node).mul_(_column(step.spread))
        b_mid.addcmul_(b_high - b_low, _column(step.weight)).add_(b_low)
        assert step.left is not None
        left = spread_rows(step.left)
        b_high = torch.where(left, b_mid, b_high)
        b_low = torch.where(left, b_low, b_mid)
    last = steps[-1]
    out = draw(last.node).mul_(_column(last.spread))
    out.addcmul_(b_high - b_low, _column(last.weight)).add_(b_low)
    return out


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
    return _path(row_seeds, variance, lambda node: _node_normals(row_seeds, node, num_positions, num_classes))


def brownian_at(row_seeds: Tensor, num_positions: int, class_ids: Tensor, variance: Tensor) -> Tensor:
    """``B(t)`` at chosen classes only: float32 ``(B, P, F)``, bit for bit ``brownian(...)[:, :, class_ids]`` per row.

    Costs ``LEVELS + 2`` keyed normals per chosen class instead of per class of the vocabulary.

    Args:
        row_seeds: ``(B,)`` int64 from a noise source.
        num_positions: ``P``.
        class_ids: ``(B, F)`` int64 class indices per row (repeats allowed).
        variance: ``(B,)`` variances ``σ²`` per row, ``>= 0``.

    Example:
        >>> from aimod.noise import KeyedNoise
        >>> seeds = KeyedNoise("a long owner secret").row_seeds(2, torch.tensor([1, 2]), torch.device("cpu"))
        >>> full = brownian(seeds, 1, 50, torch.tensor([1.0, 9.0]))
        >>> ids = torch.tensor([[49, 3], [0, 0]])
        >>> torch.equal(brownian_at(seeds, 1, ids, torch.tensor([1.0, 9.0])), full.gather(2, ids[:, None, :]))
        True
    """
    ids = class_ids.to(torch.int64)

    def draw(node: Tensor) -> Tensor:
        return normals_at(_node_seeds(row_seeds, node), num_positions, ids, UTILITY_STREAM)

    return _path(row_seeds, variance, draw)


def brownian_pairs(row_seeds: Tensor, variance: Tensor, rows: Tensor, class_ids: Tensor) -> Tensor:
    """``B(t)`` at (row, class) pairs, one position per row: float32 ``(N,)``.

    Bit for bit ``brownian(row_seeds, 1, C, variance)[rows, 0, class_ids]``; the construction's schedule and the
    seeds of its nodes are made once per row, the normals once per pair (what a sparse set of tokens wants).
    :class:`PairPath` keeps the per-row part for several sets of pairs.

    Args:
        row_seeds: ``(B,)`` int64 from a noise source.
        variance: ``(B,)`` variances ``σ²`` per row, ``>= 0``.
        rows: ``(N,)`` int64 row of each pair.
        class_ids: ``(N,)`` int64 class of each pair.

    Example:
        >>> from aimod.noise import KeyedNoise
        >>> seeds = KeyedNoise("a long owner secret").row_seeds(2, torch.tensor([1, 2]), torch.device("cpu"))
        >>> full = brownian(seeds, 1, 50, torch.tensor([1.0, 9.0]))
        >>> rows, ids = torch.tensor([1, 0, 1]), torch.tensor([49, 3, 3])
        >>> torch.equal(brownian_pairs(seeds, torch.tensor([1.0, 9.0]), rows, ids), full[rows, 0, ids])
        True
    """
    return PairPath(row_seeds, variance)(rows, class_ids)


class PairPath:
    """:func:`brownian_pairs` of some rows, with each row's schedule and node seeds made once for many calls.

    A batch whose rows share one variance (a tier) has one schedule: its bridge weights are then broadcast and
    its halving decisions are known here, so a call is about half the tensor operations.

    Args:
        row_seeds: ``(B,)`` int64 from a noise source.
        variance: ``(B,)`` variances ``σ²`` per row, ``>= 0``.

    Example:
        >>> from aimod.noise import KeyedNoise
        >>> seeds = KeyedNoise("a long owner secret").row_seeds(2, torch.tensor([1, 2]), torch.device("cpu"))
        >>> path, rows, ids = PairPath(seeds, torch.tensor([4.0, 4.0])), torch.tensor([1, 0]), torch.tensor([7, 7])
        >>> torch.equal(path(rows, ids), brownian(seeds, 1, 8, torch.tensor([4.0, 4.0]))[rows, 0, ids])
        True
    """

    def __init__(self, row_seeds: Tensor, variance: Tensor) -> None:
        device = row_seeds.device
        distinct, inverse = torch.unique(variance.to(torch.float64).cpu(), return_inverse=True)
        self._root_scale, nodes, spreads, weights, lefts = _schedule(tuple(distinct.tolist()), device)
        self._per_row = inverse.to(device)
        # every node's seeds at once, (B, 18): the root, the 16 bridges, the last step
        seeds = mix64((row_seeds ^ _CHAIN)[:, None] + nodes.index_select(0, self._per_row) * GOLDEN)
        self._position = _position_seeds(seeds.reshape(-1), 1, UTILITY_STREAM).view(seeds.shape)
        self._tables = spreads, weights, lefts
        self._uniform: tuple[list[Tensor], list[Tensor], list[bool]] | None = None
        if distinct.numel() == 1:  # one schedule: 0-d weights (broadcast) and the decisions as Python bools
            self._uniform = list(spreads[0].unbind()), list(weights[0].unbind()), lefts[0].cpu().tolist()

    def __call__(self, rows: Tensor, class_ids: Tensor) -> Tensor:
        """``B(t)`` at the pairs ``(rows[i], class_ids[i])``: float32 ``(N,)``."""
        rows = rows.to(torch.int64)
        steps, shifts = _class_terms(class_ids.to(torch.int64))
        words = self._position.index_select(0, rows).t().contiguous()  # (18, N)
        xi = _normals_from_terms(words, steps[None, :], shifts[None, :])  # (18, N)
        b_high = xi[0].mul(self._root_scale)
        b_low = torch.zeros_like(b_high)
        if self._uniform is not None:
            spread_u, weight_u, left_u = self._uniform
            for k in range(LEVELS):  # the same float32 operations as _path, its decisions taken here
                b_mid = xi[k + 1].mul(spread_u[k])
                b_mid.addcmul_(b_high - b_low, weight_u[k]).add_(b_low)
                b_high, b_low = (b_mid, b_low) if left_u[k] else (b_high, b_mid)
            out = xi[LEVELS + 1].mul(spread_u[LEVELS])
            return out.addcmul_(b_high - b_low, weight_u[LEVELS]).add_(b_low)
        spreads, weights, lefts = self._tables
        pair = self._per_row.index_select(0, rows)
        spread = spreads.index_select(0, pair).t().contiguous()  # (17, N) float32
        weight = weights.index_select(0, pair).t().contiguous()
        left = lefts.index_select(0, pair).t().contiguous()  # (16, N)
        for k in range(LEVELS):  # the same float32 operations as _path, one value per pair
            b_mid = xi[k + 1].mul(spread[k])
            b_mid.addcmul_(b_high - b_low, weight[k]).add_(b_low)
            b_high, b_low = torch.where(left[k], b_mid, b_high), torch.where(left[k], b_low, b_mid)
        out = xi[LEVELS + 1].mul(spread[LEVELS])
        return out.addcmul_(b_high - b_low, weight[LEVELS]).add_(b_low)


@functools.lru_cache(maxsize=64)
def _schedule(variances: tuple[float, ...], device: torch.device) -> tuple[float, Tensor, Tensor, Tensor, Tensor]:
    """:func:`_steps` of some variances as tables, cached: a decoding loop asks for the same few σ at every step.

    Returns the root scale, the nodes (U, 18), float32 spreads and weights (U, 17), the halving decisions (U, 16).
    """
    root_scale, steps = _steps(torch.tensor(variances, dtype=torch.float64), device)
    root = torch.full_like(steps[0].node, _N)
    nodes = torch.stack([root] + [step.node for step in steps], 1)
    spreads = torch.stack([step.spread.to(torch.float32) for step in steps], 1)
    weights = torch.stack([step.weight.to(torch.float32) for step in steps], 1)
    lefts = torch.stack([step.left for step in steps if step.left is not None], 1)
    return root_scale, nodes, spreads, weights, lefts


def brownian_bound(variance: Tensor, max_normal: float) -> Tensor:
    """An upper bound on ``|brownian(...)|`` over every position and class of each row: float64 ``(B,)``.

    ``B(t)`` is a linear combination of the row's ``LEVELS + 2`` normals with coefficients that depend on ``t``
    only (:func:`_steps`). The bound is ``max_normal · Σ|coefficient|``, the coefficients tracked exactly
    through the bridge steps with the float32 weights the values are made with, plus a bound on the float32
    rounding of those steps (unit roundoff ``2^-24`` per operation, propagated through every step; about
    ``1e-6`` relative). ``max_normal`` is the largest ``|normal|`` the normals can take
    (:func:`aimod.noise.normal_bound`). Per row, not per class: 17 small steps on ``(B, 18)`` coefficients.

    Args:
        variance: ``(B,)`` variances ``σ²`` per row, ``>= 0``.
        max_normal: Bound on every keyed normal's magnitude.

    Example:
        >>> from aimod.noise import normal_bound
        >>> bound = brownian_bound(torch.tensor([0.0, 1.0, 4.0]), normal_bound())
        >>> bound[0].item() < 1e-30, 5.42 < bound[1].item() < 5.42 * 3, bool(bound[2] > bound[1])
        (True, True, True)
    """
    device = variance.device
    root_scale, steps = _steps(variance, device)
    rows = int(variance.shape[0])
    width = len(steps) + 1
    unit, tiny = 2.0**-24, 2.0**-148  # float32's unit roundoff; twice its smallest subnormal per operation
    eye = torch.eye(width, dtype=torch.float64, device=device)

    def magnitude(coefficients: Tensor, error: Tensor) -> Tensor:
        return coefficients.abs().sum(-1).mul(max_normal).add(error)

    def as_float32(x: Tensor) -> Tensor:
        return x.to(torch.float32).to(torch.float64)

    # each value: (coefficients (B, width) of the exact combination, bound on its float32 rounding error (B,))
    c_high = eye[0].expand(rows, width) * as_float32(torch.tensor(root_scale, dtype=torch.float64))
    e_high = torch.full((rows,), unit * max_normal * root_scale + tiny, dtype=torch.float64, device=device)
    c_low = torch.zeros(rows, width, dtype=torch.float64, device=device)
    e_low = torch.zeros(rows, dtype=torch.float64, device=device)
    for k, step in enumerate(steps, start=1):
        spread, weight = as_float32(step.spread), as_float32(step.weight)
        c_x = eye[k] * spread[:, None]  # ξ·spread
        e_x = unit * max_normal * spread + tiny
        c_d = c_high - c_low  # B_high − B_low
        e_d = e_high + e_low + unit * (magnitude(c_high, e_high) + magnitude(c_low, e_low)) + tiny
        c_p = c_d * weight[:, None]  # (B_high − B_low)·weight, fused with the next sum or not
        e_p = e_d * weight + unit * magnitude(c_d, e_d) * weight + tiny
        c_y = c_x + c_p
        e_y = e_x + e_p + unit * (magnitude(c_x, e_x) + magnitude(c_p, e_p)) + tiny
        c_new = c_y + c_low  # + B_low
        e_new = e_y + e_low + unit * (magnitude(c_y, e_y) + magnitude(c_low, e_low)) + tiny
        if step.left is None:
            return magnitude(c_new, e_new).mul_(1.0 + 2.0**-30)  # float64's own rounding of this bound
        left = step.left[:, None]
        c_high, c_low = torch.where(left, c_new, c_high), torch.where(left, c_low, c_new)
        e_high, e_low = torch.where(step.left, e_new, e_high), torch.where(step.left, e_low, e_new)
    raise AssertionError("unreachable: the last step returns")  # pragma: no cover
