"""Sweeps on cached logits: run the model once, then modulate its clean logits for every sigma and seed.

The published code re-ran the model for each of 101 sigma values; here the model runs once
(:func:`cache_logits`) and every point of a sweep costs one ``modulate_logits`` + ``argmax`` + confusion
matrix per seed. Each point reports the mean over seeds with a 95 % Student-t interval, next to the theory's
prediction from the same clean logits (no sampling), and focus sweeps add the deterministic-bias baseline
(the same classes shifted by the half-normal's mean, 0.798 times the focus sigma, without noise).

Predicted metrics come from the expected confusion matrix (each sample's class probabilities summed by true
class): exact for accuracy, recall and precision counts, and a plug-in (ratio of expectations) for IoU and
mIoU, which is what a large pixel count measures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from aimod.errors import InvalidArgumentError
from aimod.eval.interval import t_interval
from aimod.eval.metrics import Metrics, confusion_matrix, metrics_from_confusion
from aimod.models.wrap import upsample_logits
from aimod.modulation import Modulation
from aimod.noise import SeededNoise
from aimod.redistribute import modulate_logits

__all__ = ["CachedLogits", "Estimate", "SweepPoint", "SweepResult", "cache_logits", "estimate", "sweep"]

HALF_NORMAL_MEAN = math.sqrt(2 / math.pi)
"""E|N(0, 1)| ≈ 0.798: the deterministic-bias baseline shifts a focused class by this times its sigma."""


@dataclass(frozen=True)
class Estimate:
    """Mean over seeds with a 95 % Student-t confidence interval."""

    mean: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        """``{"mean", "low", "high"}``."""
        return {"mean": self.mean, "low": self.low, "high": self.high}


def estimate(values: Sequence[float]) -> Estimate:
    """Mean and 95 % interval of ``values`` (fractions, one per seed), clipped to [0, 1]; NaNs are dropped.

    Example:
        >>> e = estimate([0.5, 0.6, 0.7])
        >>> round(e.mean, 3), round(e.high - e.mean, 3)
        (0.6, 0.248)
    """
    clean = [v for v in values if not math.isnan(v)]
    if not clean:
        return Estimate(math.nan, math.nan, math.nan)
    return Estimate(*t_interval(clean))


@dataclass(frozen=True)
class CachedLogits:
    """A model's clean logits on a labelled set, computed once."""

    logits: Tensor
    """(N, C) or (N, C, H, W) at label resolution, float32."""
    labels: Tensor
    """(N,) or (N, H, W) int64."""
    id2label: dict[int, str]
    """Class names."""
    ignore_index: int | None = None
    """Label value to skip (unlabelled pixels)."""

    @property
    def dim(self) -> int:
        """The class dim: 1 for segmentation, -1 for classification."""
        return 1 if self.logits.ndim == 4 else -1

    @property
    def num_classes(self) -> int:
        """C."""
        return int(self.logits.shape[1])


def cache_logits(
    forward: Callable[[Tensor], Tensor],
    inputs: Tensor,
    labels: Tensor | None,
    id2label: dict[int, str],
    *,
    batch_size: int = 256,
    ignore_index: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> CachedLogits:
    """Runs ``forward`` once over preprocessed ``inputs`` in batches.

    Segmentation logits are upsampled bilinearly to the label size (the input size when unlabelled), the
    resolution aimod modulates at (see :mod:`aimod.models.wrap`). Without ``labels`` the clean decisions
    become the labels, so "accuracy" reads as agreement with the clean model.
    """
    chunks = []
    size = tuple(labels.shape[-2:]) if labels is not None else tuple(inputs.shape[-2:])
    with torch.no_grad():
        for i in range(0, len(inputs), batch_size):
            logits = forward(inputs[i : i + batch_size]).float()
            if logits.ndim == 4:
                logits = upsample_logits(logits, size)  # the one segmentation path (aimod.models.wrap)
            chunks.append(logits)
            if progress is not None:
                progress(len(logits))
    logits = torch.cat(chunks)
    if labels is None:
        labels = logits.argmax(1)
    return CachedLogits(logits, labels, id2label, ignore_index)


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep: the knob's value, measured metrics over seeds, predictions, baseline."""

    value: float
    """Utility sigma, or the focus strength (signed std) of the swept class."""
    measured: dict[str, Estimate]
    """Metric name -> estimate over seeds."""
    predicted: dict[str, float] = field(default_factory=dict)
    """Metric name -> the theory's prediction (expected value under the modulation)."""
    baseline: dict[str, float] = field(default_factory=dict)
    """Focus sweeps: metric name -> value under the deterministic bias of the same mean."""


@dataclass(frozen=True)
class SweepResult:
    """A whole sweep, ready to save as JSON/CSV or plot."""

    model: str
    kind: Literal["utility", "focus"]
    focus_class: str | None
    seeds: int
    num_samples: int
    clean: dict[str, Any]
    points: list[SweepPoint]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "model": self.model,
            "kind": self.kind,
            "focus_class": self.focus_class,
            "seeds": self.seeds,
            "num_samples": self.num_samples,
            "clean": self.clean,
            "points": [
                {
                    "value": p.value,
                    "measured": {k: v.to_dict() for k, v in p.measured.items()},
                    "predicted": p.predicted,
                    "baseline": p.baseline,
                }
                for p in self.points
            ],
        }

    def rows(self) -> list[dict[str, float]]:
        """Flat rows for CSV: value, then metric_mean/low/high, metric_predicted, metric_baseline."""
        out = []
        for p in self.points:
            row: dict[str, float] = {"value": p.value}
            for k, v in p.measured.items():
                row.update({f"{k}_mean": v.mean, f"{k}_low": v.low, f"{k}_high": v.high})
            row.update({f"{k}_predicted": v for k, v in p.predicted.items()})
            row.update({f"{k}_baseline": v for k, v in p.baseline.items()})
            out.append(row)
        return out


def _decide_metrics(
    cached: CachedLogits, modulation: Modulation, seed: int | None, chunk: int, bias: tuple[int, float] | None = None
) -> Metrics:
    """Metrics of the modulated decisions over the whole set (one seed), chunked to bound memory."""
    k = cached.num_classes
    cm = torch.zeros(k, k, dtype=torch.int64)
    noise = SeededNoise(seed if seed is not None else 0)
    for i in range(0, len(cached.logits), chunk):
        z = cached.logits[i : i + chunk]
        if bias is not None:
            z = z.clone()
            cls, shift = bias
            z.select(cached.dim, cls).add_(shift)
        elif not modulation.is_identity:
            z = modulate_logits(z, modulation, dim=cached.dim, noise=noise, id2label=cached.id2label)
        cm += confusion_matrix(z.argmax(cached.dim), cached.labels[i : i + chunk], k, ignore_index=cached.ignore_index)
    return metrics_from_confusion(cm)


def _summaries(metrics: Metrics, focus_id: int | None, segmentation: bool) -> dict[str, float]:
    out = {"accuracy": metrics.accuracy}
    if segmentation:  # mIoU is the segmentation metric; over a few samples of 1000 classes it means little
        out["mIoU"] = metrics.miou
    if focus_id is not None:
        others = torch.cat([metrics.iou[:focus_id], metrics.iou[focus_id + 1 :]])
        out.update(
            {
                "recall": float(metrics.recall[focus_id]),
                "precision": float(metrics.precision[focus_id]),
                "IoU": float(metrics.iou[focus_id]),
            }
        )
        if segmentation:
            out["mIoU_others"] = float(others.nanmean())
    return out


def _predicted(cached: CachedLogits, modulation: Modulation, focus_id: int | None, max_rows: int) -> dict[str, float]:
    """The theory's expected metrics, from the clean logits (a fixed random subset of pixels for segmentation)."""
    from aimod import theory

    z, y = cached.logits, cached.labels
    if cached.dim == 1:  # pixels become rows
        z = z.movedim(1, -1).reshape(-1, cached.num_classes)
        y = y.reshape(-1)
    if cached.ignore_index is not None:
        keep = y != cached.ignore_index
        z, y = z[keep], y[keep]
    if len(z) > max_rows:
        pick = torch.randperm(len(z), generator=torch.Generator().manual_seed(0))[:max_rows]  # same pixels per point
        z, y = z[pick], y[pick]
    probs = theory.class_probabilities(z.double(), modulation, id2label=cached.id2label)  # (n, K)
    k = cached.num_classes
    expected_cm = torch.zeros(k, k, dtype=torch.float64).index_add_(0, y, probs.double())
    metrics = metrics_from_confusion(expected_cm)
    return _summaries(metrics, focus_id, cached.dim == 1)


def sweep(
    cached: CachedLogits,
    values: Sequence[float],
    *,
    kind: Literal["utility", "focus"] = "utility",
    focus_class: int | str | None = None,
    seeds: int = 5,
    model_name: str = "",
    chunk: int | None = None,
    predict: bool = True,
    max_predicted_rows: int = 50_000,
    progress: Callable[[int], None] | None = None,
) -> SweepResult:
    """Measures (and predicts) metrics over a grid of utility sigmas or focus strengths.

    Args:
        cached: Clean logits and labels from :func:`cache_logits`.
        values: Utility sigmas (``kind="utility"``) or signed focus strengths of ``focus_class``.
        kind: ``"utility"`` or ``"focus"``.
        focus_class: Class id or name; required for focus sweeps (its recall, precision and IoU are reported).
        seeds: Noise seeds per point (>= 2 for an interval).
        model_name: For the report.
        chunk: Rows (images) per modulation call; by default as many as fit in about 4M logits.
        predict: Add the theory's predictions.
        max_predicted_rows: Pixels sampled (seeded) for segmentation predictions.
        progress: Called with 1 after each (value, seed) run.
    """
    if kind not in ("utility", "focus"):
        raise InvalidArgumentError("kind", kind, "'utility' or 'focus'")
    if seeds < 1:
        raise InvalidArgumentError("seeds", seeds, "an int >= 1")
    if kind == "focus" and focus_class is None:
        raise InvalidArgumentError("focus_class", None, "a class id or name for a focus sweep")
    focus_id: int | None = None
    if focus_class is not None:
        focus_id = Modulation(focus={focus_class: 1.0}).resolve(cached.num_classes, cached.id2label).class_ids[0]
    if chunk is None:
        chunk = max(1, 2**22 // cached.logits[0].numel())
    clean = _decide_metrics(cached, Modulation(), None, chunk)
    points = []
    for value in values:
        modulation = (
            Modulation(sigma=value) if focus_id is None or kind == "utility" else Modulation(focus={focus_id: value})
        )
        runs = []
        for seed in range(seeds):
            runs.append(_summaries(_decide_metrics(cached, modulation, seed, chunk), focus_id, cached.dim == 1))
            if progress is not None:
                progress(1)
        measured = {name: estimate([r[name] for r in runs]) for name in runs[0]}
        predicted = _predicted(cached, modulation, focus_id, max_predicted_rows) if predict else {}
        baseline = {}
        if kind == "focus" and focus_id is not None:
            biased = _decide_metrics(cached, Modulation(), None, chunk, bias=(focus_id, HALF_NORMAL_MEAN * value))
            baseline = _summaries(biased, focus_id, cached.dim == 1)
        points.append(SweepPoint(float(value), measured, predicted, baseline))
    return SweepResult(
        model=model_name,
        kind=kind,
        focus_class=cached.id2label.get(focus_id, str(focus_id)) if focus_id is not None else None,
        seeds=seeds,
        num_samples=len(cached.logits),
        clean=clean.to_dict([cached.id2label[i] for i in range(cached.num_classes)]),
        points=points,
    )
