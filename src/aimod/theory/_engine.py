"""General path: decision probabilities for any sigma >= 0 and any focus, by a graded composite rule.

For a class ``c``, ``P(argmax z̃ = c) = ∫ f_c(t) ∏_{j≠c} F_j(t) dt`` (see :mod:`aimod.theory._laws` for the laws).
All classes of a row share one set of nodes ``t`` (from :func:`~aimod.theory._quadrature.graded_panels`), so a
row costs O(nodes x classes):

* a non-focused class (Gaussian) contributes ``∫ λ_c(t)·G(t) dt`` with ``G = ∏_j F_j`` the CDF of the maximum
  and ``λ_c = f_c/F_c`` its reverse hazard, so no product is formed per class;
* a focused class uses the product of the other CDFs, formed by prefix and suffix products;
* with ``σ = 0`` the non-focused classes are point masses: only the first largest of them, ``b0`` at ``m0``,
  can win, with probability ``∏_focused F_t(m0)``, and a focused class can only win above ``m0``.

Non-focused classes whose logit is more than ``2·7.5·σ`` below where the maximum can lie are left out: their
CDF is 1 there to double precision and their probability below 1e-13. When only one class per row is wanted
(agreement, accuracy) and there are more than 64 non-focused classes, their product is taken from the
compressed gaps of :mod:`aimod.theory._compress` instead, so a row costs O(nodes x 100) whatever K is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from aimod.theory._compress import SortedGaps, bin_width, compress, log_cdf_sum
from aimod.theory._laws import TAIL, focused_cdf_pdf, normal_cdf, normal_pdf
from aimod.theory._quadrature import graded_panels

__all__ = ["integrate", "plain_gaps"]

_ORDER = 12  # Gauss–Legendre nodes per panel
_ELEMENTS = 2**21
"""Memory budget of the quadrature: rows x nodes x classes per block (float64: 16 MiB per intermediate, about
ten of them live). Blocks split the rows, then the nodes (the integrals are sums over nodes), so the memory
stays bounded whatever the number of focused classes; the time grows as nodes x classes."""
_MANY_PLAIN = 2048  # above this many non-focused classes the maximum's peak gets a uniform grid of panels
_COMPRESS_ABOVE = 64  # for one class per row, more non-focused classes than this are compressed
_X_LIMIT = 14.0  # non-focused classes 14 sigma below the largest never matter (nodes sit above m0 - 7.5 sigma)


def plain_gaps(logits: Tensor, focus_ids: Sequence[int]) -> SortedGaps:
    """Gaps ``m0 - z_j`` of the non-focused classes to the largest of them, sorted: reusable across sigmas.

    Args:
        logits: ``(N, K)`` float64 CPU logits.
        focus_ids: Focused class ids.
    """
    plain = torch.ones(logits.shape[1], dtype=torch.bool)
    plain[list(focus_ids)] = False
    z_plain = logits[:, plain]
    return SortedGaps(z_plain.max(1, keepdim=True).values - z_plain)


def integrate(
    logits: Tensor,
    sigma: float,
    focus_ids: Sequence[int],
    strengths: Sequence[float],
    classes: Tensor | None,
    *,
    gaps: SortedGaps | None = None,
    compress_plain: bool = True,
) -> Tensor:
    """Decision probabilities under utility ``sigma`` and focus, by quadrature.

    Args:
        logits: ``(N, K)`` float64 CPU logits, finite.
        sigma: Utility std ``>= 0``; with ``sigma == 0`` at least one class must be focused.
        focus_ids: Focused class ids, distinct.
        strengths: Their signed half-normal stds, non-zero.
        classes: ``(N,)`` int64 class per row to return, or None for all classes.
        gaps: ``plain_gaps(logits, focus_ids)``, to reuse across sigmas; built when needed if None.
        compress_plain: False to take every non-focused class into ``G`` one by one, as a reference.

    Returns:
        ``(N, K)`` float64 probabilities, or ``(N,)`` for the given classes.

    Example:
        >>> z = torch.tensor([[2.0, 1.0, 0.0]], dtype=torch.float64)
        >>> [round(p, 4) for p in integrate(z, 0.0, [1, 2], [2.0, -1.0], None)[0].tolist()]
        [0.3829, 0.6171, 0.0]
    """
    num_rows, num_classes = logits.shape
    compressed = compress_plain and classes is not None and sigma > 0 and num_classes - len(focus_ids) > _COMPRESS_ABOVE
    if compressed and classes is not None and gaps is None and num_rows * num_classes > _ELEMENTS:
        step = max(1, _ELEMENTS // num_classes)  # bound the memory of the sorted gaps
        parts = [
            integrate(logits[i : i + step], sigma, focus_ids, strengths, classes[i : i + step])
            for i in range(0, num_rows, step)
        ]
        return torch.cat(parts)
    ids = torch.tensor(list(focus_ids), dtype=torch.int64)
    scales = torch.tensor(list(strengths), dtype=torch.float64)  # (F,)
    focused = torch.zeros(num_classes, dtype=torch.bool)
    focused[ids] = True
    plain_ids = (~focused).nonzero()[:, 0]  # (K - F,)
    z_focus = logits[:, ids]  # (N, F)
    z_plain = logits[:, plain_ids]  # (N, K - F)

    if plain_ids.numel():
        m0, arg = z_plain.max(1)  # first index of the largest non-focused logit
        b0 = plain_ids[arg]
    else:
        m0 = torch.full((num_rows,), -math.inf, dtype=torch.float64)
        b0 = torch.full((num_rows,), -1, dtype=torch.int64)
    promote = scales > 0
    spread = TAIL * scales.abs()
    if sigma > 0:
        lo_focus = z_focus - TAIL * sigma - torch.where(promote, 0.0, spread)
        hi_focus = z_focus + TAIL * sigma + torch.where(promote, spread, 0.0)
        lo_plain, hi_plain = m0 - TAIL * sigma, m0 + TAIL * sigma
        width = torch.full((num_rows,), sigma, dtype=torch.float64)
    else:
        lo_focus = torch.where(promote, z_focus, z_focus - spread)
        hi_focus = torch.where(promote, z_focus + spread, z_focus)
        lo_plain, hi_plain = m0, m0
        width = torch.full((num_rows,), float(scales.abs().min()), dtype=torch.float64)
    lo, hi = lo_plain, hi_plain
    if ids.numel():
        lo = torch.maximum(lo, lo_focus.max(1).values)
        hi = torch.maximum(hi, hi_focus.max(1).values)
    # With sigma > 0 every law is smooth (Gaussian or skew-normal); with sigma 0 the half-normals start at z.
    breaks = torch.cat([m0[:, None], z_focus], 1)
    if sigma > 0 and plain_ids.numel() > _MANY_PLAIN:
        # The maximum of R Gaussians has width about σ/√(2 ln R) and sits up to ~5σ above m0, where graded
        # panels are several σ wide: a uniform σ/4 grid over m0 ± 7.5σ resolves it (rows sum to 1e-6 at 50,000).
        grid = sigma * torch.arange(-4 * TAIL, 4 * TAIL + 1, dtype=torch.float64) / 4.0
        breaks = torch.cat([breaks, m0[:, None] + grid], 1)
    t, w = graded_panels(lo, hi, breaks, width, _ORDER, smooth=sigma > 0)  # (N, M)

    position = weight = None
    if compressed:  # the non-focused part of G from a few weighted points (see _compress)
        gaps = gaps if gaps is not None else SortedGaps(m0[:, None] - z_plain)
        nodes, weight = compress(gaps, bin_width(sigma), _X_LIMIT * sigma)
        position = nodes / sigma
    # Non-focused classes that can matter: within 2·TAIL·σ of the lowest point where the maximum lies.
    if sigma > 0 and plain_ids.numel() and not compressed:
        relevant = int((z_plain >= (lo - TAIL * sigma)[:, None]).sum(1).max())
        z_top, top = z_plain.topk(max(relevant, 1), dim=1)  # (N, R)
        top_ids = plain_ids[top]
    else:
        z_top = torch.empty(num_rows, 0, dtype=torch.float64)
        top_ids = torch.empty(num_rows, 0, dtype=torch.int64)

    out = torch.zeros((num_rows, num_classes) if classes is None else (num_rows,), dtype=torch.float64)
    width_of_row = z_top.shape[1] + ids.numel() + 1 + (0 if position is None else position.shape[1])
    rows = max(1, _ELEMENTS // (t.shape[1] * width_of_row))
    cols = max(_ORDER, _ELEMENTS // (min(rows, num_rows) * width_of_row))  # nodes per block: integrals add up
    for start in range(0, num_rows, rows):
        part = slice(start, start + rows)
        for first in range(0, t.shape[1], cols):
            block = slice(first, first + cols)
            t_part, w_part = t[part, block], w[part, block]
            g_plain = None
            if position is not None and weight is not None:
                u = (t_part - m0[part, None]) / sigma
                g_plain = torch.exp(log_cdf_sum(u, position[part], weight[part]))
            weighted_max, focus_p = _chunk(t_part, w_part, z_top[part], z_focus[part], sigma, scales, g_plain)
            if classes is None:
                if z_top.shape[1]:
                    hazard = _hazard(t_part[:, :, None] - z_top[part, None, :], sigma)  # (n, m, R)
                    out[part].scatter_add_(1, top_ids[part], torch.einsum("nm,nmr->nr", weighted_max, hazard))
                out[part, ids] += focus_p
                continue
            chosen = classes[part]
            hit = ids[None, :] == chosen[:, None]  # (n, F)
            if sigma > 0:  # a non-focused class: ∫ λ_c·G, also right for classes left out of G (F_c ≈ 1)
                z_c = logits[part].gather(1, chosen[:, None])
                plain_p = (weighted_max * _hazard(t_part - z_c, sigma)).sum(1)
            else:
                plain_p = torch.zeros(weighted_max.shape[0], dtype=torch.float64)
            out[part] += torch.where(hit.any(1), (focus_p * hit).sum(1), plain_p)

    if sigma == 0 and plain_ids.numel():  # the point mass of the largest non-focused class
        cdf_at_m0, _ = _focus_laws(m0[:, None] - z_focus, sigma, scales)
        p_b0 = cdf_at_m0.prod(1)
        if classes is None:
            out.scatter_(1, b0[:, None], p_b0[:, None])
        else:
            out += torch.where(classes == b0, p_b0, 0.0)
    return out


def _hazard(y: Tensor, sigma: float) -> Tensor:
    """Reverse hazard ``φ(y/σ) / (σ·Φ(y/σ))`` of a Gaussian class at ``y = t - z``.

    Where ``Φ`` underflows the CDF of the maximum is 0 too, so the clamp only avoids 0/0.
    """
    x = y / sigma
    return normal_pdf(x) / (sigma * normal_cdf(x).clamp(min=1e-300))


def _focus_laws(y: Tensor, sigma: float, scales: Tensor) -> tuple[Tensor, Tensor]:
    """CDFs and densities of the focused classes at ``y = t - z``, ``y`` of shape ``(..., F)``."""
    cdf = torch.empty_like(y)
    pdf = torch.empty_like(y)
    for k, strength in enumerate(scales.tolist()):
        cdf[..., k], pdf[..., k] = focused_cdf_pdf(y[..., k].contiguous(), sigma, strength)
    return cdf, pdf


def _chunk(
    t: Tensor, w: Tensor, z_top: Tensor, z_focus: Tensor, sigma: float, scales: Tensor, g_plain: Tensor | None
) -> tuple[Tensor, Tensor]:
    """``w·G`` for a chunk of rows, ``G`` the CDF of the maximum ``(n, M)``, and the focused classes' ``(n, F)``."""
    n, m = t.shape
    g = torch.ones(n, m, dtype=torch.float64) if g_plain is None else g_plain
    if z_top.shape[1]:
        g = normal_cdf((t[:, :, None] - z_top[:, None, :]) / sigma).prod(2)  # non-focused part of G
    if not z_focus.shape[1]:
        return w * g, torch.empty(n, 0, dtype=torch.float64)
    cdf, pdf = _focus_laws(t[:, :, None] - z_focus[:, None, :], sigma, scales)  # (n, M, F)
    ones = torch.ones(n, m, 1, dtype=torch.float64)
    before = torch.cat([ones, cdf[:, :, :-1]], 2).cumprod(2)
    after = torch.cat([cdf[:, :, 1:], ones], 2).flip(2).cumprod(2).flip(2)
    others = before * after  # product of the other focused CDFs, (n, M, F)
    focus_p = torch.einsum("nm,nmf->nf", w * g, pdf * others)
    return w * g * others[:, :, 0] * cdf[:, :, 0], focus_p
