"""Fast exact path: P(argmax = c) under utility noise only, for one class c per row and many sigmas.

With ``Δ_j = z_c - z_j`` and ``x_j = Δ_j/σ``,

    P(argmax z̃ = c) = ∫ φ(u) ∏_{j≠c} Φ(u + x_j) du = ∫ φ(u) exp(ℓ(u)) du,   ℓ(u) = Σ_j log Φ(u + x_j).

Three steps make it cheap for thousands of classes and sigmas while keeping ~1e-5 accuracy:

1. **Compression** (:mod:`aimod.theory._compress`). The gaps of a row are sorted once; for each sigma they
   are cut into bins of width ``<= 0.3·σ`` and each bin becomes the two-point Gauss rule of its own points.
   Classes with ``x > 12`` are dropped: ``Φ(u + x) > 1 - 2e-8`` at every node ``u >= -6.5``. Bins start no
   lower than ``x = -11`` (a competitor 11 sigma ahead makes ``P(c) < 1e-14``, reported as 0), so a sigma
   costs at most ``23/0.3`` bins per row whatever the gaps; rows where c is tied with some classes and more
   than 40 sigma ahead of all others get ``1/(ties + 1)`` exactly. Logits are first shifted and, if huge,
   scaled (:func:`aimod.theory._limits.normalise`).
2. **Interval.** ``ℓ`` is concave, so by Jensen ``ℓ(u) <= W·log Φ(u + x̄)`` for any subset of the points with
   total weight ``W`` and mean ``x̄``; the best such bound over the prefixes of the sorted points gives, with
   no iteration, a ``u_lo`` below which ``ℓ < -15``. The upper end is ``u = 5`` (``1 - Φ(5) ≈ 3e-7``).
3. **Rule.** A 20-node Gauss–Legendre rule on ``[u_lo, 5]``, ``log Φ`` in float32, sums in float64.

Measured against plain 400- to 1500-node float64 rules over all classes (sigma 0.05 to 1000): max error per
sample 7e-6 (mean 1e-6) on 1000-class logits of a trained-like model; 1.8e-5 on 32,000 and 1.5e-5 on
152,000 classes. Plain Gauss–Hermite needs ~48 nodes for 1.6e-4 and costs O(K) per node. Speed: 10,000
samples x 1,000 classes x 101 sigmas in about 4 s on one CPU core.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from aimod.theory._compress import SortedGaps, bin_width, compress, log_cdf_sum
from aimod.theory._limits import CLEAR_GAP, normalise, scale_sigma
from aimod.theory._quadrature import gauss_legendre

__all__ = ["UtilityRetention"]

_X_MAX = 12.0  # classes farther than 12 sigma behind never matter (Φ(5.5) rounds to 1 in float32)
_X_DEAD = 11.0  # a competitor this many sigmas ahead makes P(c) < 1e-14: report 0
_U_MIN, _U_MAX = -6.5, 5.0  # the u-range of the integral: Φ(-6.5) ≈ 4e-11, 1 - Φ(5) ≈ 3e-7
_LOG_CUT = 15.0  # below u_lo the integrand is < e^-15 times φ
_NODES = 20
_ELEMENTS = 2**21  # rows x classes per chunk of precomputed gaps (float64)
_CACHE_ELEMENTS = 2**24  # keep the precomputed gaps of calls up to this size (4 x 8 bytes each: 512 MiB)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class _Chunk:
    """The sorted gaps ``Δ_j = z_c - z_j`` (j ≠ c) of a chunk of rows, and whether c is the clean argmax."""

    def __init__(self, logits: Tensor, classes: Tensor) -> None:
        gaps = logits.gather(1, classes[:, None]) - logits  # (n, K)
        gaps.scatter_(1, classes[:, None], math.inf)  # drop c itself: it sorts last
        self.gaps = SortedGaps(gaps.sort(1).values[:, :-1], is_sorted=True)
        self.wins_clean = (logits.argmax(1) == classes).to(torch.float64)
        self.rows = logits.shape[0]
        sorted_gaps = self.gaps.sorted
        # other classes tied with c, and the smallest positive gap: by bisection of the sorted rows
        zero = torch.zeros(self.rows, 1, dtype=sorted_gaps.dtype)
        below = torch.searchsorted(sorted_gaps, zero)[:, 0]
        upto = torch.searchsorted(sorted_gaps, zero, right=True)[:, 0]
        self.tie_share = 1.0 / (upto - below + 1).to(torch.float64)  # P(c) when every other gap is 0 or far
        self.lead = torch.full((self.rows,), math.inf, dtype=torch.float64)
        if sorted_gaps.shape[1]:
            nxt = sorted_gaps.gather(1, upto.clamp(max=sorted_gaps.shape[1] - 1)[:, None])[:, 0]
            self.lead = torch.where(upto < sorted_gaps.shape[1], nxt, math.inf)


class UtilityRetention:
    """``P(argmax(z + σ·ε) == c)`` for a given class ``c`` per row, for many sigmas at a time.

    Args:
        logits: ``(N, K)`` float64 CPU logits, finite.
        classes: ``(N,)`` int64 class per row (the clean argmax for agreement, the label for accuracy).

    Example:
        >>> z = torch.tensor([[2.0, 0.0, 0.0]], dtype=torch.float64)
        >>> curve = UtilityRetention(z, torch.tensor([0]))([0.0, 1.0, 1e6])
        >>> [round(p, 4) for p in curve[:, 0].tolist()]
        [1.0, 0.8658, 0.3333]
    """

    def __init__(self, logits: Tensor, classes: Tensor) -> None:
        logits, self.factor = normalise(logits, shift=False)  # gaps only: scaled if huge, never shifted
        self.logits = logits
        self.classes = classes
        num_rows, num_classes = logits.shape
        self.rows_per_chunk = max(1, _ELEMENTS // num_classes)
        self._cache: list[_Chunk] | None = None
        if num_rows * num_classes <= _CACHE_ELEMENTS:
            self._cache = list(self._chunks())

    def _chunks(self) -> Iterator[_Chunk]:
        if self._cache is not None:
            yield from self._cache
            return
        for start in range(0, self.logits.shape[0], self.rows_per_chunk):
            stop = start + self.rows_per_chunk
            yield _Chunk(self.logits[start:stop], self.classes[start:stop])

    def __call__(self, sigmas: Sequence[float]) -> Tensor:
        """Probabilities of shape ``(S, N)``, float64, for sigmas ``>= 0``."""
        sigmas = [scale_sigma(float(sigma), self.factor) for sigma in sigmas]
        num_rows, num_classes = self.logits.shape
        out = torch.empty(len(sigmas), num_rows, dtype=torch.float64)
        if num_classes == 1:
            return out.fill_(1.0)
        levels: dict[float, list[int]] = {}  # sigmas whose bin widths round to the same value share bins
        for i, sigma in enumerate(sigmas):
            if sigma > 0:
                levels.setdefault(bin_width(sigma), []).append(i)
        start = 0
        for chunk in self._chunks():
            stop = start + chunk.rows
            for i, sigma in enumerate(sigmas):
                if sigma == 0:
                    out[i, start:stop] = chunk.wins_clean
            for width, members in levels.items():
                largest = max(sigmas[i] for i in members)
                if not bool((chunk.gaps.ref[:, 0] >= -_X_DEAD * largest).any()):  # every row has lost
                    for i in members:
                        out[i, start:stop] = 0.0
                    continue
                nodes, weight = compress(chunk.gaps, width, _X_MAX * largest, -_X_DEAD * largest)
                for i in members:
                    sigma = float(sigmas[i])
                    value = _retention(chunk.gaps, nodes, weight, sigma)
                    # c tied with some classes and far ahead of the rest: shares the win with them exactly
                    clear = (chunk.gaps.ref[:, 0] >= 0) & (chunk.lead > CLEAR_GAP * sigma)
                    out[i, start:stop] = torch.where(clear, chunk.tie_share, value)
            start = stop
        return out


def _retention(gaps: SortedGaps, nodes: Tensor, weight: Tensor, sigma: float) -> Tensor:
    """P(argmax = c) for each row of a chunk at one sigma > 0, shape ``(n,)``.

    Args:
        gaps: The chunk's sorted gaps.
        nodes: Compressed gaps ``(n, P)``, ascending along each row.
        weight: Their weights ``(n, P)``.
        sigma: The utility std.
    """
    position = nodes / sigma
    far = position > _X_MAX
    position = position.masked_fill(far, 2.0 * _X_MAX)
    weight = weight.masked_fill(far, 0.0)
    u_lo = _lower_end(position, weight)  # (n,)
    # Nodes sit at u >= u_lo, so points with u_lo + x > 5.5 have Φ > 1 - 2e-8 at every node, as those with
    # x > 12 at u >= -6.5: drop them too, and the columns no row still needs (points ascend along a row).
    far = position > (_X_MAX + _U_MIN - u_lo)[:, None]
    needed = max(1, int((~far).sum(1).max()))
    position = position.masked_fill(far, 2.0 * _X_MAX)[:, :needed]
    weight = weight.masked_fill(far, 0.0)[:, :needed]
    points, weights = gauss_legendre(_NODES)
    half = 0.5 * (_U_MAX - u_lo)[:, None]
    u = (0.5 * (_U_MAX + u_lo))[:, None] + half * points  # (n, Q)
    w = half * weights * torch.exp(-0.5 * u * u) * _INV_SQRT_2PI
    result = (w * torch.exp(log_cdf_sum(u, position, weight))).sum(1)
    dead = gaps.ref[:, 0] < -_X_DEAD * sigma
    return result.masked_fill_(dead, 0.0)


def _lower_end(position: Tensor, weight: Tensor) -> Tensor:
    """The largest ``u`` at which the Jensen bound over prefixes shows ``ℓ(u) <= -15``, shape ``(n,)``."""
    total = weight.cumsum(1)
    mean = (weight * position).cumsum(1) / total.clamp(min=1e-300)
    level = torch.exp(-_LOG_CUT / total.clamp(min=1e-300))
    # Φ⁻¹(p) = √2·erfinv(2p - 1): ten times faster than ndtri; 0.01 of slack covers its rounding near p = 0
    bound = math.sqrt(2.0) * torch.erfinv(2.0 * level - 1.0) - 0.01 - mean
    bound = torch.where(total > 0, bound, _U_MIN)
    return bound.max(1).values.clamp(_U_MIN, _U_MAX - 0.5)
