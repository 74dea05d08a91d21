"""The edges of the theory: huge logits, and utility sigmas negligible against the gaps.

Two facts keep every probability finite and cheap there, whatever the logits and sigma:

* **Scale.** Decisions do not change when the logits, the utility sigma and the focus stds are all multiplied
  by the same number, or when a row is shifted. :func:`normalise` shifts each row to a maximum of 0 and, when
  some logit exceeds ``2**1000`` in magnitude, scales everything by an exact power of two, so that gaps such
  as ``1e308 - (-1e308)`` stay finite. A positive sigma that the scaling would round to 0 becomes the
  smallest positive float, so it keeps its meaning (ties broken at random).
* **Sigma negligible.** A row whose non-focused logits are either tied with their maximum or more than
  ``40·σ`` below it (``Φ(-40/√2) < 1e-170``), and whose focus stds are all above ``σ / 1e-9``, has the law of
  the ``σ → 0`` limit to within about 1e-9: the clean decision, with the tied maxima equally likely, under
  the pure-focus law. :func:`negligible_rows` finds those rows and :func:`sigma_limit` returns their
  probabilities in closed form (or the pure-focus quadrature), with no node count that grows with gap/σ.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["CLEAR_GAP", "NEGLIGIBLE", "magnify", "negligible_rows", "normalise", "scale_sigma", "sigma_limit"]

CLEAR_GAP = 40.0
"""A non-focused class this many utility sigmas below the leader never wins (probability below 1e-170)."""
NEGLIGIBLE = 1e-9
"""A utility sigma below this fraction of every focus std changes no focus probability by more than ~1e-9."""
_LARGEST = 2.0**1000  # logits beyond this are scaled down by a power of two before gaps are formed


def normalise(logits: Tensor, *, shift: bool = True) -> tuple[Tensor, float]:
    """Each row shifted to a maximum of 0, scaled by a power of two if its values are huge.

    Args:
        logits: ``(N, K)`` float64 finite logits.
        shift: False leaves the rows where they are (for callers that use only gaps between logits, which a
            shift does not change): then ordinary logits come back as they are, at no cost.

    Returns:
        ``(z, factor)``: the logits to use, and the factor by which sigma and focus stds must be multiplied.

    Example:
        >>> z, factor = normalise(torch.tensor([[1e308, -1e308]], dtype=torch.float64))
        >>> bool(torch.isfinite(z).all()), z[0, 0].item(), factor < 1
        (True, 0.0, True)
    """
    factor = 1.0
    if logits.numel():
        low, high = torch.aminmax(logits)
        largest = max(-float(low), float(high))
        if largest > _LARGEST:
            factor = 2.0 ** (1000 - math.ceil(math.log2(largest)))
            logits = logits * factor
    if shift and logits.numel():
        logits = logits - logits.max(1, keepdim=True).values
    return logits, factor


def magnify(logits: Tensor, sigma: float, strengths: Sequence[float]) -> tuple[Tensor, float, tuple[float, ...]]:
    """For a positive sigma below ``2**-900``: logits, sigma and focus stds scaled up to sigma about 1.

    Logits (shifted to a maximum of 0) are first clamped at ``-2**1000`` of the new scale, far beyond the
    ``40σ`` where a non-focused class stops mattering, so nothing overflows. Left as they are when a focus
    std would overflow, or when a clamped class is focused.

    Example:
        >>> z, sigma, _ = magnify(torch.tensor([[0.0, -1e-310, -1.0]], dtype=torch.float64), 1e-310, ())
        >>> 0.5 < sigma < 2, z[0, :2].tolist() == [0.0, -1e-310 / 1e-310 * sigma]
        (True, True)
    """
    if not 0 < sigma < 2.0**-900:
        return logits, sigma, tuple(strengths)
    k = -math.floor(math.log2(sigma))  # up to 1074: 2**k itself may not be a float, so scale in two steps
    if any(abs(s) > 2.0 ** (1000 - k) for s in strengths):
        return logits, sigma, tuple(strengths)
    floor = -(2.0 ** (1000 - k))
    half = k // 2
    z = logits.clamp(min=floor) * 2.0**half * 2.0 ** (k - half)
    return z, math.ldexp(sigma, k), tuple(math.ldexp(s, k) for s in strengths)


def scale_sigma(sigma: float, factor: float) -> float:
    """``sigma·factor``, kept positive when ``sigma`` is (the smallest positive float at worst)."""
    scaled = sigma * factor
    return scaled if scaled > 0 or sigma == 0 else math.ulp(0.0)


def negligible_rows(logits: Tensor, sigma: float, focus_ids: Sequence[int], strengths: Sequence[float]) -> Tensor:
    """Rows whose law under utility ``sigma > 0`` is its ``σ → 0`` limit (see the module docstring), ``(N,)`` bool.

    Args:
        logits: ``(N, K)`` float64 logits, each row shifted to a maximum of 0.
        sigma: Utility std, > 0.
        focus_ids: Focused class ids.
        strengths: Their signed stds.
    """
    if focus_ids and sigma > NEGLIGIBLE * min(abs(s) for s in strengths):
        return torch.zeros(logits.shape[0], dtype=torch.bool)
    plain = _plain_mask(logits.shape[1], focus_ids)
    if not bool(plain.any()):
        return torch.ones(logits.shape[0], dtype=torch.bool)
    z_plain = logits[:, plain]
    gap = z_plain.max(1, keepdim=True).values - z_plain
    return ((gap == 0) | (gap > CLEAR_GAP * sigma)).all(1)


def sigma_limit(
    logits: Tensor,
    focus_ids: Sequence[int],
    strengths: Sequence[float],
    classes: Tensor | None,
    pure_focus: Callable[[Tensor], Tensor],
) -> Tensor:
    """Decision probabilities in the ``σ → 0`` limit: pure focus, with ties among the non-focused leaders split.

    Args:
        logits: ``(n, K)`` float64 logits.
        focus_ids: Focused class ids.
        strengths: Their signed stds.
        classes: ``(n,)`` int64 class per row to return, or None for all classes.
        pure_focus: The ``σ = 0`` probabilities ``(n, K)`` of rows (first index wins among tied leaders).

    Returns:
        ``(n, K)`` float64, or ``(n,)`` for the given classes.

    Example:
        >>> z = torch.tensor([[0.0, 0.0, -1.0]], dtype=torch.float64)
        >>> one_hot = lambda rows: torch.nn.functional.one_hot(rows.argmax(1), 3).double()
        >>> sigma_limit(z, [], [], None, one_hot).tolist()
        [[0.5, 0.5, 0.0]]
    """
    probs = pure_focus(logits) if logits.shape[0] else torch.zeros_like(logits)
    plain = _plain_mask(logits.shape[1], focus_ids)
    if bool(plain.any()) and logits.shape[0]:
        z_plain = torch.where(plain, logits, -math.inf)
        top = z_plain.max(1, keepdim=True).values
        tied = z_plain == top  # (n, K), only non-focused classes
        leader_mass = (probs * tied).sum(1, keepdim=True)  # all of it sits on the first tied leader
        probs = torch.where(tied, leader_mass / tied.sum(1, keepdim=True), probs)
    return probs if classes is None else probs.gather(1, classes[:, None])[:, 0]


def _plain_mask(num_classes: int, focus_ids: Sequence[int]) -> Tensor:
    plain = torch.ones(num_classes, dtype=torch.bool)
    plain[list(focus_ids)] = False
    return plain
