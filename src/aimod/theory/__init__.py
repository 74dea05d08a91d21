"""Exact predictions of what a modulation does to a model's decisions, from its clean logits alone.

Under a :class:`~aimod.Modulation`, class ``j`` of a sample gets ``z̃_j = z_j + σ·ε_j + s_j·σ_j·|η_j|``
(utility noise on every class, focus noise on the focused ones) and the decision is ``argmax z̃``. Every
probability here is the one-dimensional integral

    P(argmax z̃ = c) = ∫ f_c(t) ∏_{j≠c} F_j(t) dt

over the laws of the noisy logits (Gaussian, signed half-normal, their sum, or a point mass), evaluated by
quadrature, never by sampling, so curves over many sigmas cost no model runs and no labels. The tests check
every function against Monte Carlo simulation through :func:`aimod.modulate_logits`.

* :func:`class_probabilities` ``(N, K)``, :func:`agreement` ``(N,)``, :func:`accuracy` ``(N,)``: one modulation.
* :func:`agreement_curve`, :func:`accuracy_curve` ``(S, N)``: many utility sigmas, same focus.
* :func:`sigma_for`: the inverse, the utility sigma for a target mean agreement.
* :func:`promotion_probability`, :func:`suppression_probability`: closed forms for pure focus on one class.

Results are float64 for float64 logits and float32 otherwise (float16 and bfloat16 included); they are
computed on the CPU in float64, with float32 only in the inner loop of the utility-only fast path (error
about 1e-5).

Example:
    >>> import torch
    >>> from aimod import Modulation, theory
    >>> z = torch.tensor([[4.0, 1.0, 0.0], [1.0, 0.9, 0.0]])
    >>> theory.agreement(z, Modulation(sigma=1.0))
    tensor([0.9813, 0.4656])
    >>> round(theory.sigma_for(z, 0.7), 3)
    1.211
"""

from __future__ import annotations

from aimod.theory._curves import accuracy_curve, agreement_curve
from aimod.theory._inverse import sigma_for
from aimod.theory._laws import promotion_probability, suppression_probability
from aimod.theory._probabilities import accuracy, agreement, class_probabilities

__all__ = [
    "accuracy",
    "accuracy_curve",
    "agreement",
    "agreement_curve",
    "class_probabilities",
    "promotion_probability",
    "sigma_for",
    "suppression_probability",
]
