"""Exact decision probabilities of a modulated model: per class, agreement with the clean model, accuracy."""

from __future__ import annotations

import torch
from torch import Tensor

from aimod.modulation import Id2Label, Modulation, ResolvedModulation
from aimod.theory._checks import check_labels, check_logits, output_dtype, resolve
from aimod.theory._compress import SortedGaps
from aimod.theory._engine import integrate
from aimod.theory._laws import promotion_probability, suppression_probability
from aimod.theory._limits import magnify, negligible_rows, normalise, scale_sigma, sigma_limit
from aimod.theory._retention import UtilityRetention

__all__ = ["accuracy", "agreement", "class_probabilities", "probabilities"]


def class_probabilities(logits: Tensor, modulation: Modulation, *, id2label: Id2Label | None = None) -> Tensor:
    """Probability of each decision of the modulated model, from the clean logits alone.

    ``P(argmax(z + σ·ε + focus) == c)`` for every sample and class ``c``, computed by quadrature (no sampling).
    Without noise the decision is the clean ``argmax``, first index on ties, as in ``torch.argmax``.

    Args:
        logits: Clean logits ``(N, K)``, floating, finite; any device (computed on the CPU).
        modulation: The modulation whose effect to predict.
        id2label: Class names by id, to resolve named focus classes.

    Returns:
        ``(N, K)`` probabilities; each row sums to 1 (to about 1e-6). float64 for float64 logits, else
        float32; on the device of ``logits``.

    Raises:
        InvalidLogitsError: If ``logits`` is not a finite floating ``(N, K)`` tensor.
        InvalidArgumentError: If ``modulation`` is not a :class:`~aimod.Modulation`.
        UnknownClassError: If a focus class is not one of the ``K`` classes.

    Example:
        >>> import torch
        >>> from aimod import Modulation
        >>> z = torch.tensor([[2.0, 1.0, 0.0]])
        >>> class_probabilities(z, Modulation(sigma=1.0))
        tensor([[0.7288, 0.2241, 0.0472]])
        >>> class_probabilities(z, Modulation(focus={2: 3.0}))  # promote class 2: 2Φ(-2/3)
        tensor([[0.4950, 0.0000, 0.5050]])
    """
    z = check_logits(logits)
    resolved = resolve(modulation, z.shape[1], id2label)
    return probabilities(z, resolved, None).to(device=logits.device, dtype=output_dtype(logits))


def agreement(logits: Tensor, modulation: Modulation, *, id2label: Id2Label | None = None) -> Tensor:
    """Probability that the modulated model makes the same decision as the clean model, per sample.

    ``P(argmax(z̃) == argmax(z))``. Averaged over a data set this is the utility of the modulated model
    relative to the clean one, and needs no labels.

    Args:
        logits: Clean logits ``(N, K)``, floating, finite; any device (computed on the CPU).
        modulation: The modulation whose effect to predict.
        id2label: Class names by id, to resolve named focus classes.

    Returns:
        ``(N,)`` probabilities; float64 for float64 logits, else float32; on the device of ``logits``.

    Raises:
        InvalidLogitsError: If ``logits`` is not a finite floating ``(N, K)`` tensor.
        InvalidArgumentError: If ``modulation`` is not a :class:`~aimod.Modulation`.
        UnknownClassError: If a focus class is not one of the ``K`` classes.

    Example:
        >>> import torch
        >>> from aimod import Modulation
        >>> z = torch.tensor([[2.0, 1.0, 0.0], [5.0, 0.0, 0.0]])
        >>> agreement(z, Modulation(sigma=1.0))
        tensor([0.7288, 0.9996])
    """
    z = check_logits(logits)
    resolved = resolve(modulation, z.shape[1], id2label)
    return probabilities(z, resolved, z.argmax(1)).to(device=logits.device, dtype=output_dtype(logits))


def accuracy(logits: Tensor, labels: Tensor, modulation: Modulation, *, id2label: Id2Label | None = None) -> Tensor:
    """Probability that the modulated model's decision is the true label, per sample.

    Args:
        logits: Clean logits ``(N, K)``, floating, finite; any device (computed on the CPU).
        labels: True class ids ``(N,)``, integer, in ``[0, K)``.
        modulation: The modulation whose effect to predict.
        id2label: Class names by id, to resolve named focus classes.

    Returns:
        ``(N,)`` probabilities; their mean is the expected accuracy. float64 for float64 logits, else float32;
        on the device of ``logits``.

    Raises:
        InvalidLogitsError: If ``logits`` is not a finite floating ``(N, K)`` tensor.
        InvalidArgumentError: If ``labels`` is not an integer ``(N,)`` tensor of ids in ``[0, K)``, or
            ``modulation`` is not a :class:`~aimod.Modulation`.
        UnknownClassError: If a focus class is not one of the ``K`` classes.

    Example:
        >>> import torch
        >>> from aimod import Modulation
        >>> z = torch.tensor([[2.0, 1.0, 0.0], [5.0, 0.0, 0.0]])
        >>> accuracy(z, torch.tensor([1, 0]), Modulation(sigma=1.0))
        tensor([0.2241, 0.9996])
    """
    z = check_logits(logits)
    ids = check_labels(labels, z.shape[0], z.shape[1])
    resolved = resolve(modulation, z.shape[1], id2label)
    return probabilities(z, resolved, ids).to(device=logits.device, dtype=output_dtype(logits))


def probabilities(
    logits: Tensor, resolved: ResolvedModulation, classes: Tensor | None, *, gaps: SortedGaps | None = None
) -> Tensor:
    """Dispatches to the cheapest exact method.

    Rows are shifted to a maximum of 0 (and huge logits scaled, see :mod:`aimod.theory._limits`); rows where
    sigma is negligible against every gap take the sigma -> 0 limit in closed form, the others quadrature.

    Args:
        logits: ``(N, K)`` float64 CPU logits, finite.
        resolved: The modulation with its focus resolved to class ids.
        classes: ``(N,)`` int64 class per row to return, or None for all classes.
        gaps: ``plain_gaps(logits, resolved.class_ids)`` when the caller reuses them across sigmas.

    Returns:
        ``(N, K)`` float64, or ``(N,)`` for the given classes.
    """
    logits, factor = normalise(logits)
    if factor != 1.0:
        resolved = ResolvedModulation(
            scale_sigma(resolved.sigma, factor), resolved.class_ids, tuple(s * factor for s in resolved.strengths)
        )
        gaps = None
    if resolved.sigma > 0.0 and logits.shape[0] and logits.shape[1] > 1:
        limit = negligible_rows(logits, resolved.sigma, resolved.class_ids, resolved.strengths)
        if bool(limit.any()):
            return _split(logits, resolved, classes, limit)
    if 0.0 < resolved.sigma < 2.0**-900:  # gap/σ and φ/σ would overflow: scale up (decisions do not change)
        logits, sigma, strengths = magnify(logits, resolved.sigma, resolved.strengths)
        resolved, gaps = ResolvedModulation(sigma, resolved.class_ids, strengths), None
    return _probabilities(logits, resolved, classes, gaps)


def _split(logits: Tensor, resolved: ResolvedModulation, classes: Tensor | None, limit: Tensor) -> Tensor:
    """Rows where sigma is negligible from the sigma -> 0 limit, the others by quadrature."""
    zero = ResolvedModulation(0.0, resolved.class_ids, resolved.strengths)
    out = torch.empty(logits.shape if classes is None else (logits.shape[0],), dtype=torch.float64)
    picked = None if classes is None else classes[limit]
    out[limit] = sigma_limit(
        logits[limit], resolved.class_ids, resolved.strengths, picked, lambda z: _probabilities(z, zero, None, None)
    )
    rest = ~limit
    if bool(rest.any()):
        z_rest, sigma, strengths = magnify(logits[rest], resolved.sigma, resolved.strengths)
        picked = None if classes is None else classes[rest]
        out[rest] = _probabilities(z_rest, ResolvedModulation(sigma, resolved.class_ids, strengths), picked, None)
    return out


def _probabilities(
    logits: Tensor, resolved: ResolvedModulation, classes: Tensor | None, gaps: SortedGaps | None
) -> Tensor:
    """:func:`probabilities` on normalised logits, without the sigma -> 0 rows."""
    num_rows, num_classes = logits.shape
    sigma, ids, strengths = resolved.sigma, resolved.class_ids, resolved.strengths
    if num_rows == 0:
        return torch.zeros((0, num_classes) if classes is None else (0,), dtype=torch.float64)
    if num_classes == 1 or (sigma == 0.0 and not ids):  # no noise, or nothing to choose from
        one_hot = torch.zeros(num_rows, num_classes, dtype=torch.float64)
        one_hot.scatter_(1, logits.argmax(1, keepdim=True), 1.0)
        return one_hot if classes is None else one_hot.gather(1, classes[:, None])[:, 0]
    if sigma == 0.0 and len(ids) == 1:
        probs = _single_focus(logits, ids[0], strengths[0])
        return probs if classes is None else probs.gather(1, classes[:, None])[:, 0]
    if sigma > 0.0 and not ids and classes is not None:
        return UtilityRetention(logits, classes)([sigma])[0]
    return integrate(logits, sigma, ids, strengths, classes, gaps=gaps)


def _single_focus(logits: Tensor, class_id: int, strength: float) -> Tensor:
    """Pure focus on one class: the closed forms. Only that class and the leader of the rest can win."""
    others = logits.clone()
    others[:, class_id] = -torch.inf
    best, leader = others.max(1)  # first index among ties, as torch.argmax
    z_t = logits[:, class_id]
    if strength > 0:
        p_t = promotion_probability(best - z_t, strength)
    else:
        p_t = suppression_probability(z_t - best, -strength)
    probs = torch.zeros_like(logits)
    probs.scatter_(1, leader[:, None], (1.0 - p_t)[:, None])
    probs[:, class_id] = p_t
    return probs
