"""The inverse problem: the utility sigma that gives a data set a target agreement with the clean model."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping

from scipy.optimize import brentq
from torch import Tensor

from aimod.errors import InvalidLogitsError, InvalidTargetError
from aimod.modulation import ClassKey, Id2Label, Modulation, ResolvedModulation
from aimod.theory._checks import check_logits, focus_only
from aimod.theory._limits import normalise, sigma_limit
from aimod.theory._probabilities import probabilities
from aimod.theory._retention import UtilityRetention

__all__ = ["sigma_for"]

_FINE_STEP, _GRID = 2.0, 21  # without focus: 21 sigmas from std/1024 to std*1024 per pass
_COARSE_STEP = 4.0  # with focus: one sigma at a time, from std upwards
_MAX_RATIO = 1e30  # give up when sigma reaches this many logit stds
CHANCE_MARGIN = 1e-4
"""Targets must be at least ``1/K + CHANCE_MARGIN``: nearer chance the sigma is unbounded and meaningless."""
_TOLERANCE = 1e-9  # relative tolerance on sigma; the agreement is then exact to its own ~1e-5


def sigma_for(
    logits: Tensor,
    target: float,
    *,
    focus: Modulation | Mapping[ClassKey, float] | None = None,
    id2label: Id2Label | None = None,
) -> float:
    """The utility sigma whose mean agreement with the clean model equals ``target``.

    Turns a product setting ("this tier keeps 70 % of the clean model's decisions") into the sigma that
    delivers it on these logits, without labels. Mean agreement is 1 at sigma 0 and falls to ``1/K`` as sigma
    grows (without focus it never rises); the sigma is found by bracketing then Brent's method on the exact
    quadrature, to a relative precision of about 1e-9.

    With ``focus``, the agreement at sigma 0 is already below 1 when the focus changes decisions, so the
    largest reachable target is that value; the agreement need not be monotone in sigma, and the first
    crossing found on a geometric grid is refined.

    Args:
        logits: Clean logits ``(N, K)`` of a representative data set, floating, finite, ``N >= 1``, ``K >= 2``.
        target: Wanted mean agreement, in ``[1/K + 1e-4, 1]`` (``CHANCE_MARGIN``); 1 gives 0.0. Where some rows
            have exactly tied top logits, the agreement drops at once from its sigma-0 value to its limit as
            sigma -> 0+ (noise breaks the ties), and targets in between are unreachable.
        focus: Focus applied along with the utility noise: a mapping from class id or name to signed std,
            or a :class:`~aimod.Modulation` with ``sigma=0``; None for utility only.
        id2label: Class names by id, to resolve named focus classes.

    Returns:
        The sigma, a float >= 0 in logit units.

    Raises:
        InvalidLogitsError: If ``logits`` is not a finite floating ``(N, K)`` tensor with ``N >= 1``.
        InvalidTargetError: If ``target`` is not a number in ``[1/K + 1e-4, 1]``, is above what the focus
            allows, or lies in the jump that tied rows make at sigma 0+.
        InvalidArgumentError: If ``focus`` is a Modulation with a non-zero sigma.
        UnknownClassError: If a focus class is not one of the ``K`` classes.

    Example:
        >>> import torch
        >>> z = torch.tensor([[2.0, 1.0, 0.0], [5.0, 0.0, 0.0]])
        >>> sigma = sigma_for(z, 0.8)
        >>> round(sigma, 4)
        1.4908
        >>> from aimod import Modulation
        >>> from aimod.theory import agreement
        >>> round(float(agreement(z, Modulation(sigma=sigma)).mean()), 4)
        0.8
    """
    z = check_logits(logits)
    num_rows, num_classes = z.shape
    if num_rows == 0:
        raise InvalidLogitsError(
            "logits", "a tensor with 0 rows", "at least one sample", "Pass the logits of a representative data set."
        )
    chance = 1.0 / num_classes
    allowed = f"a number in (1/K, 1] = ({chance:.6g}, 1] for these logits with K={num_classes} classes"
    fix = "1 means the clean model (sigma 0); values near 1/K mean chance-level decisions."
    if isinstance(target, bool) or not isinstance(target, numbers.Real) or not math.isfinite(float(target)):
        raise InvalidTargetError("target", target, allowed, fix)
    goal = float(target)
    if not chance < goal <= 1.0:
        raise InvalidTargetError("target", target, allowed, fix)
    if goal < chance + CHANCE_MARGIN:
        raise InvalidTargetError(
            "target",
            target,
            f"at least 1/K + {CHANCE_MARGIN:g} = {chance + CHANCE_MARGIN:.6g}: closer to chance, the sigma grows "
            "without bound and means nothing",
            "Use a target clearly above chance; any sigma much larger than the logit spread gives about 1/K.",
        )

    resolved = focus_only(focus).resolve(num_classes, id2label)
    mean_agreement = _mean_agreement(z, resolved)
    at_zero = mean_agreement([0.0])[0]
    if goal >= at_zero:
        if goal == at_zero or (goal == 1.0 and at_zero == 1.0):
            return 0.0
        raise InvalidTargetError(
            "target",
            target,
            f"at most {at_zero:.6g}, the mean agreement of this focus alone (sigma 0)",
            "Lower the target, or weaken the focus.",
        )
    just_above = _limit_agreement(z, resolved)
    if goal > just_above:  # tied rows: any sigma > 0 splits their ties, so the agreement jumps down at 0
        raise InvalidTargetError(
            "target",
            target,
            f"at most {just_above:.6g}, the mean agreement as sigma -> 0+: some rows have tied top logits, and "
            "any utility noise breaks those ties at random",
            "Lower the target, or pass logits without exact ties (the clean model's own choice among tied "
            "classes is the first index, which no noisy model keeps).",
        )
    # Bracket: without focus all sigmas of a geometric grid cost one pass over the sorted gaps; with focus
    # each sigma is a full quadrature, so the grid is walked one coarse step at a time.
    scale = max(float(z.std()), 1e-6)
    step, count = (_FINE_STEP, _GRID) if not resolved.class_ids else (_COARSE_STEP, 1)
    low, sigma = 0.0, scale * step ** -(count // 2)
    while sigma < _MAX_RATIO * scale:
        grid = [sigma * step**k for k in range(count)]
        below = [i for i, value in enumerate(mean_agreement(grid)) if value < goal]
        if below:
            low, high = (grid[below[0] - 1] if below[0] else low), grid[below[0]]
            break
        low, sigma = grid[-1], grid[-1] * step
    else:
        raise InvalidTargetError(
            "target",
            target,
            f"clearly above chance (1/K = {chance:.6g}); at sigma {low:.3g} the agreement is still above it",
            "Use a target at least 1e-4 above 1/K.",
        )
    root: float = brentq(lambda s: mean_agreement([s])[0] - goal, low, high, xtol=1e-300, rtol=_TOLERANCE)
    return root


def _limit_agreement(logits: Tensor, focus: ResolvedModulation) -> float:
    """Mean agreement in the limit sigma -> 0+ (ties among the non-focused leaders split)."""
    z, _ = normalise(logits)
    zero = ResolvedModulation(0.0, focus.class_ids, focus.strengths)
    clean = logits.argmax(1)
    limit = sigma_limit(z, focus.class_ids, focus.strengths, clean, lambda rows: probabilities(rows, zero, None))
    return float(limit.mean())


def _mean_agreement(logits: Tensor, focus: ResolvedModulation) -> Callable[[list[float]], list[float]]:
    """Mean agreement for a list of sigmas; the utility-only path keeps its sorted gaps between calls."""
    clean = logits.argmax(1)
    if not focus.class_ids:
        retention = UtilityRetention(logits, clean)
        return lambda sigmas: retention(sigmas).mean(1).tolist()

    def with_focus(sigmas: list[float]) -> list[float]:
        resolved = [ResolvedModulation(sigma, focus.class_ids, focus.strengths) for sigma in sigmas]
        return [float(probabilities(logits, r, clean).mean()) for r in resolved]

    return with_focus
