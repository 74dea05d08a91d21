"""Calibration from clean logits: each tier's σ from the exact theory, no labels and no extra forward pass.

For classifiers a row is an image; for segmenters a row is a pixel (agreement is per-pixel) and ``groups``
names each pixel's image, so the interval is computed over images, whose pixels are not independent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from aimod.calibrate.tiers import Tier, check_targets
from aimod.errors import InvalidArgumentError
from aimod.field import FieldNoise
from aimod.modulation import ClassKey, Id2Label, Modulation
from aimod.redistribute import modulate_logits

__all__ = ["calibrate_logits", "interval", "measured_sigma"]


def interval(values: Tensor, groups: Tensor | None = None) -> tuple[float, float, float]:
    """Mean of per-row values and the 95 % Student-t interval of that mean over independent units.

    Units are rows, or the groups' means when ``groups`` (one id per row) is given.

    Example:
        >>> mean, low, high = interval(torch.tensor([0.5, 0.6, 0.7, 0.8]))
        >>> round(mean, 3), round(low, 3), round(high, 3)
        (0.65, 0.445, 0.855)
    """
    values = values.double().reshape(-1)
    if groups is not None:
        ids, inverse = torch.unique(groups.reshape(-1), return_inverse=True)
        sums = torch.zeros(len(ids), dtype=torch.float64).index_add_(0, inverse, values)
        counts = torch.zeros(len(ids), dtype=torch.float64).index_add_(0, inverse, torch.ones_like(values))
        units = sums / counts
    else:
        units = values
    mean = float(values.mean())  # the pooled mean (every pixel weighs the same)
    if len(units) < 2 and not bool((values == values[0]).all()):  # one unit: its spread is unknown
        return mean, 0.0, 1.0
    from aimod.eval.interval import t_interval

    return t_interval(units.tolist(), center=mean)


def calibrate_logits(
    logits: Tensor,
    targets: Mapping[str, float],
    *,
    groups: Tensor | None = None,
    focus: Mapping[ClassKey, float] | None = None,
    id2label: Id2Label | None = None,
    max_rows: int = 100_000,
    noise: FieldNoise | None = None,
) -> tuple[Tier, ...]:
    """Tiers from clean logits ``(N, K)``: σ by :func:`aimod.theory.sigma_for`, predicted agreement and interval.

    With ``noise`` (the :class:`~aimod.FieldNoise` a server will deploy, with its secret), each σ is then
    refined so that the agreement **measured under that very noise** on these inputs meets the target: a field
    correlates the noise of similar inputs, so one secret's realised agreement scatters around the theory by
    a few points (benchmarks/bench_tier_integrity.py), and it does so alike on inputs like these (measured:
    correlation 0.975 to 0.99 between the calibration and held-out halves of Fashion-MNIST over 16 secrets).

    Args:
        logits: Clean logits of the calibration inputs, one row per decision.
        targets: Tier name -> target agreement, validated by :func:`aimod.calibrate.check_targets`.
        groups: Optional ``(N,)`` unit of each row (the image of a pixel) for the interval.
        focus: A focus the tiers must hold their targets under (all tiers), or None.
        id2label: Class names, to resolve named focus classes.
        max_rows: Rows kept (a seeded random subset) when there are more; the theory is exact per row, so
            this bounds time, not precision, once rows are in the tens of thousands.
        noise: The :class:`~aimod.FieldNoise` a server will deploy, to refine each σ under (see above), or None.

    Example:
        >>> from aimod.data import classifier_logits
        >>> z, _ = classifier_logits(2000, 10, seed=0)
        >>> tiers = calibrate_logits(z, {"standard": 0.9, "free": 0.5})
        >>> [(t.name, round(t.predicted, 4)) for t in tiers]
        [('standard', 0.9), ('free', 0.5)]
        >>> tiers[0].sigma < tiers[1].sigma and tiers[1].low < 0.5 < tiers[1].high
        True
    """
    from aimod import theory

    if logits.ndim != 2:
        raise InvalidArgumentError("logits", f"a tensor of shape {tuple(logits.shape)}", "(N, K) rows of logits")
    check_targets(targets, int(logits.shape[1]))
    if len(logits) > max_rows:
        pick = torch.randperm(len(logits), generator=torch.Generator().manual_seed(0))[:max_rows]
        logits = logits[pick]
        groups = groups.reshape(-1)[pick] if groups is not None else None
    rows = logits.double()
    tiers = []
    for name, target in targets.items():
        # with focus, sigma_for also checks that a target of 1 is reachable (focus alone may change decisions)
        sigma = (
            0.0
            if target >= 1.0 and not focus
            else float(theory.sigma_for(rows, target, focus=focus, id2label=id2label))
        )
        if noise is not None and sigma > 0:
            sigma = measured_sigma(rows, target, sigma, noise, focus=focus, id2label=id2label)
            modulation = Modulation(sigma=sigma, focus=dict(focus or {}))
            per_row = _agreement_under(rows, modulation, noise, id2label).double()
        else:
            modulation = Modulation(sigma=sigma, focus=dict(focus or {}))
            per_row = theory.agreement(rows, modulation, id2label=id2label)
        predicted, low, high = interval(per_row, groups)
        tiers.append(Tier(name=name, target=target, sigma=sigma, predicted=predicted, low=low, high=high))
    return tuple(tiers)


def _agreement_under(rows: Tensor, modulation: Modulation, noise: FieldNoise, id2label: Id2Label | None) -> Tensor:
    """Per row: 1 where the decision under ``noise`` equals the clean decision."""
    keys = torch.arange(len(rows), dtype=torch.int64)  # the field ignores keys for utility; they key focus
    out = modulate_logits(rows.to(torch.float32), modulation, noise=noise, keys=keys, id2label=id2label)
    return (out.argmax(1) == rows.argmax(1)).to(torch.float32)


def measured_sigma(
    rows: Tensor,
    target: float,
    start: float,
    noise: FieldNoise,
    *,
    focus: Mapping[ClassKey, float] | None = None,
    id2label: Id2Label | None = None,
    steps: int = 40,
) -> float:
    """The σ near ``start`` whose agreement measured under ``noise`` on ``rows`` is ``target`` (bisection in log σ).

    Example:
        >>> from aimod import FieldNoise, theory
        >>> from aimod.data import classifier_logits
        >>> z, _ = classifier_logits(2000, 10, seed=0)
        >>> noise = FieldNoise("a long owner secret", features=64)
        >>> s = measured_sigma(z, 0.7, theory.sigma_for(z, 0.7), noise)
        >>> abs(float(_agreement_under(z, Modulation(sigma=s), noise, None).mean()) - 0.7) < 0.005
        True
    """

    def measured(sigma: float) -> float:
        return float(_agreement_under(rows, Modulation(sigma=sigma, focus=dict(focus or {})), noise, id2label).mean())

    low, high = start, start
    while measured(low) < target and low > start / 64:  # the agreement falls with sigma: bracket the target
        low /= 1.5
    while measured(high) > target and high < start * 64:
        high *= 1.5
    for _ in range(steps):
        mid = math.sqrt(low * high)
        if measured(mid) > target:
            low = mid
        else:
            high = mid
    return math.sqrt(low * high)


def focus_effect(
    logits: Tensor,
    sigma: float,
    focus: Mapping[ClassKey, float],
    *,
    id2label: Id2Label | None = None,
) -> dict[str, float]:
    """What a user's focus does to a tier's agreement, predicted exactly from clean logits ``(N, K)``.

    Returns the mean agreement with the clean model at utility ``sigma`` without and with ``focus``: over
    all rows (``all_*``) and over the rows whose clean decision is not a focused class (``others_*``, the
    decisions the user did not ask to change), plus the share of those rows (``others_share``).

    Example:
        >>> from aimod.data import classifier_logits
        >>> z, _ = classifier_logits(2000, 10, seed=0)
        >>> e = focus_effect(z, 1.0, {3: 4.0})
        >>> e["others_with"] < e["others_without"] and e["all_with"] < e["all_without"]
        True
    """
    from aimod import theory

    rows = logits.double()
    focus_mod = Modulation(focus=dict(focus))
    ids = torch.tensor(focus_mod.resolve(int(rows.shape[1]), id2label).class_ids, dtype=torch.int64)
    others = ~torch.isin(rows.argmax(1), ids)
    without = theory.agreement(rows, Modulation(sigma=sigma), id2label=id2label)
    with_focus = theory.agreement(rows, focus_mod.with_sigma(sigma), id2label=id2label)
    return {
        "all_without": float(without.mean()),
        "all_with": float(with_focus.mean()),
        "others_without": float(without[others].mean()),
        "others_with": float(with_focus[others].mean()),
        "others_share": float(others.double().mean()),
    }
