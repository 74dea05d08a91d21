"""Evaluation: metrics from one confusion matrix, sweeps on cached logits, reports and plots."""

from __future__ import annotations

from aimod.eval.metrics import Metrics, confusion_matrix, metrics_from_confusion
from aimod.eval.sweep import CachedLogits, Estimate, SweepPoint, SweepResult, cache_logits, estimate, sweep

__all__ = [
    "CachedLogits",
    "Estimate",
    "Metrics",
    "SweepPoint",
    "SweepResult",
    "cache_logits",
    "confusion_matrix",
    "estimate",
    "metrics_from_confusion",
    "sweep",
]
