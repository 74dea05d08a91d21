"""The law of one noisy logit, and the closed forms for pure focus on one class.

Under a :class:`~aimod.Modulation` with utility sigma ``σ`` a class ``j`` gets ``z̃_j = z_j + σ·ε_j + s_j·a_j·|η_j|``
(the focus term only on focused classes, ``a_j > 0``, sign ``s_j``). Written ``y = t - z_j``, its law is

* ``σ > 0``, not focused: Gaussian, CDF ``Φ(y/σ)``;
* ``σ > 0``, focused: skew-normal with scale ``ω = √(σ² + a²)`` and shape ``α = s·a/σ``:
  density ``(2/ω)·φ(y/ω)·Φ(α·y/ω)``, CDF ``Φ(y/ω) - 2·T(y/ω, α)`` with Owen's ``T``;
* ``σ = 0``, focused: a half-normal of scale ``a`` on ``[0, ∞)`` (promote) or ``(-∞, 0]`` (suppress);
* ``σ = 0``, not focused: a point mass at ``z_j``.
"""

from __future__ import annotations

import math

import torch
from scipy.special import owens_t
from torch import Tensor

from aimod.errors import InvalidArgumentError

__all__ = [
    "TAIL",
    "focused_cdf_pdf",
    "normal_cdf",
    "normal_pdf",
    "promotion_probability",
    "suppression_probability",
]

TAIL = 7.5
"""Half-widths, in stds, beyond which a law is treated as having no mass (P(|N(0,1)| > 7.5) ≈ 6e-14)."""

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def normal_cdf(x: Tensor) -> Tensor:
    """Φ(x), accurate in both tails (``erfc`` keeps the relative precision of small values)."""
    cdf: Tensor = 0.5 * torch.special.erfc(-x / _SQRT2)
    return cdf


def normal_pdf(x: Tensor) -> Tensor:
    """φ(x)."""
    return torch.exp(-0.5 * x * x) * _INV_SQRT_2PI


def focused_cdf_pdf(y: Tensor, sigma: float, strength: float) -> tuple[Tensor, Tensor]:
    """CDF and density of ``σ·ε + strength·|η|`` at ``y`` (float64), for a focused class.

    Args:
        y: Points ``t - z_j``, any shape, float64.
        sigma: Utility std ``σ >= 0``.
        strength: Signed std of the half-normal, non-zero (``+`` promotes, ``-`` suppresses).

    Returns:
        ``(cdf, pdf)``, each shaped like ``y``.
    """
    a = abs(strength)
    if sigma == 0.0:
        x = y / a
        pdf = 2.0 / a * normal_pdf(x)
        if strength > 0:  # support [0, ∞): CDF 2Φ(x) - 1
            cdf = torch.where(y > 0, torch.special.erf(x / _SQRT2), 0.0)
            pdf = torch.where(y >= 0, pdf, 0.0)
        else:  # support (-∞, 0]: CDF 2Φ(x)
            cdf = torch.where(y < 0, torch.special.erfc(-x / _SQRT2), 1.0)
            pdf = torch.where(y <= 0, pdf, 0.0)
        return cdf, pdf
    omega = math.hypot(sigma, a)
    alpha = strength / sigma
    x = y / omega
    owen = torch.from_numpy(owens_t(x.numpy(), alpha))
    cdf = (normal_cdf(x) - 2.0 * owen).clamp_(0.0, 1.0)
    pdf = 2.0 / omega * normal_pdf(x) * normal_cdf(alpha * x)
    return cdf, pdf


def _closed_form_args(name: str, value: Tensor | float, sigma: float) -> tuple[Tensor, float, torch.dtype]:
    """Checks the arguments of the closed forms; returns the values in float64, sigma, and the output dtype."""
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma <= 0:
        raise InvalidArgumentError(
            "sigma",
            sigma,
            "a finite number > 0 (std of the half-normal focus noise, in logit units)",
            "With sigma 0 the focus adds nothing: the decision stays the clean argmax.",
        )
    if isinstance(value, Tensor):
        if not value.is_floating_point():
            value = value.to(torch.float64)
        dtype = torch.float64 if value.dtype == torch.float64 else torch.float32
        values = value.detach().to(torch.float64)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        dtype = torch.float64
        values = torch.tensor(float(value), dtype=torch.float64)
    else:
        raise InvalidArgumentError(name, value, "a tensor or a number, in logit units")
    if bool(torch.isnan(values).any()):
        raise InvalidArgumentError(name, value, "free of NaN", "Check how the logit differences were computed.")
    return values, float(sigma), dtype


def promotion_probability(gap: Tensor | float, sigma: float) -> Tensor:
    """Probability that a promoted class becomes the decision under pure focus noise.

    The promoted class ``t`` gets ``|N(0, sigma²)|`` added to its logit and nothing else changes, so it wins
    when that draw exceeds its gap to the current leader: ``2·Φ(-gap/sigma)``. Where the class already wins
    (``gap <= 0``) it keeps winning, so the probability is 1.

    Args:
        gap: ``max_{j≠t} z_j - z_t``, any shape; ``<= 0`` where ``t`` already wins.
        sigma: Std of the half-normal focus noise, in logit units; finite and > 0.

    Returns:
        Probabilities in [0, 1], shaped like ``gap``; float64 for float64 or Python numbers, else float32.

    Raises:
        InvalidArgumentError: If ``sigma`` is not finite and > 0, or ``gap`` has NaN.

    Example:
        >>> import torch
        >>> promotion_probability(torch.tensor([0.0, 2.0, -1.0]), sigma=2.0)
        tensor([1.0000, 0.3173, 1.0000])
    """
    values, sigma, dtype = _closed_form_args("gap", gap, sigma)
    probability: Tensor = torch.special.erfc(values.clamp(min=0.0) / (sigma * _SQRT2))  # 2Φ(-g/σ)
    return probability.to(dtype)


def suppression_probability(lead: Tensor | float, sigma: float) -> Tensor:
    """Probability that a suppressed class stays the decision under pure focus noise.

    The suppressed class ``t`` gets ``-|N(0, sigma²)|`` added to its logit; if it leads by ``lead > 0`` it
    stays ahead while the draw is smaller than the lead: ``2·Φ(lead/sigma) - 1``. Where it does not lead
    (``lead <= 0``) it can only fall further, so the probability is 0.

    Args:
        lead: ``z_t - max_{j≠t} z_j``, any shape; ``<= 0`` where ``t`` does not win.
        sigma: Std of the half-normal focus noise, in logit units; finite and > 0.

    Returns:
        Probabilities in [0, 1], shaped like ``lead``; float64 for float64 or Python numbers, else float32.

    Raises:
        InvalidArgumentError: If ``sigma`` is not finite and > 0, or ``lead`` has NaN.

    Example:
        >>> import torch
        >>> suppression_probability(torch.tensor([2.0, 0.0, -1.0]), sigma=2.0)
        tensor([0.6827, 0.0000, 0.0000])
    """
    values, sigma, dtype = _closed_form_args("lead", lead, sigma)
    probability: Tensor = torch.special.erf(values.clamp(min=0.0) / (sigma * _SQRT2))  # 2Φ(g/σ) - 1
    return probability.to(dtype)
