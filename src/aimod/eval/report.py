"""Saving sweeps: a JSON file, a CSV table and a PNG plot per sweep, in one output folder."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from aimod.errors import MissingExtraError
from aimod.eval.sweep import SweepResult

__all__ = ["draw_metric", "plot_sweep", "pyplot", "save_sweep"]

_LABELS = {
    "accuracy": "accuracy",
    "mIoU": "mIoU",
    "recall": "recall of the focused class",
    "precision": "precision of the focused class",
    "IoU": "IoU of the focused class",
    "mIoU_others": "mIoU of the other classes",
    "exact_match": "exact match",
    "mc_accuracy": "multiple-choice accuracy",
    "token_agreement": "token agreement with clean",
    "first_token_agreement": "first-token agreement",
    "word_rate": "answers with a focused word",
}


def save_sweep(result: SweepResult, folder: str | Path, stem: str) -> dict[str, Path]:
    """Writes ``<stem>.json``, ``<stem>.csv`` and ``<stem>.png`` into ``folder``; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / f"{stem}.json", "csv": folder / f"{stem}.csv", "png": folder / f"{stem}.png"}
    paths["json"].write_text(json.dumps(result.to_dict(), indent=2, allow_nan=True) + "\n")
    rows = result.rows()
    with paths["csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot_sweep(result, paths["png"])
    return paths


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display needed).

    Raises:
        MissingExtraError: Without matplotlib (the ``eval`` extra).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise MissingExtraError("matplotlib", "eval") from error
    return plt


def draw_metric(ax: Any, result: SweepResult, metric: str, *, label: str | None = None, color: str = "C0") -> None:
    """Draws one metric of a sweep on ``ax``, in percent.

    The measured mean with its 95 % band, the theory's prediction, the deterministic-bias baseline and the clean
    model's value, where the sweep has them.
    """
    x = [p.value for p in result.points]
    mean = [100 * p.measured[metric].mean for p in result.points]
    low = [100 * p.measured[metric].low for p in result.points]
    high = [100 * p.measured[metric].high for p in result.points]
    ax.fill_between(x, low, high, alpha=0.25, color=color, linewidth=0)
    name = f"{label}: " if label else ""
    ax.plot(x, mean, "o-", color=color, markersize=3, label=f"{name}measured (mean, 95 % CI, {result.seeds} seeds)")
    predicted = [100 * p.predicted.get(metric, math.nan) for p in result.points]
    if not all(math.isnan(v) for v in predicted):
        ax.plot(x, predicted, "--", color="C1" if label is None else color, label=f"{name}theory (clean logits only)")
    baseline = [100 * p.baseline.get(metric, math.nan) for p in result.points]
    if not all(math.isnan(v) for v in baseline):
        ax.plot(x, baseline, ":", color="C2", label="deterministic bias, same mean")
    ax.set_xlabel("utility sigma" if result.kind == "utility" else f"focus sigma on {result.focus_class!r}")
    clean = result.clean.get(metric)
    if isinstance(clean, float) and label is None:
        ax.axhline(100 * clean, color="grey", linewidth=0.8, linestyle="-.", label="clean model")
    ax.set_ylabel(f"{_LABELS.get(metric, metric)} (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)


def plot_sweep(result: SweepResult, path: str | Path) -> None:
    """One panel per metric: measured mean with its 95 % band, the theory's prediction, the baseline."""
    plt = pyplot()
    metrics = [m for m in _LABELS if m in result.points[0].measured]
    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(metrics) :]:
        ax.set_visible(False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        draw_metric(ax, result, metric)
    for ax in axes.flat[: len(metrics)]:
        ax.legend(fontsize=6, loc="best")
    title = f"{result.model}: {result.kind} modulation"
    if result.focus_class:
        title += f" of {result.focus_class!r}"
    fig.suptitle(f"{title} ({result.num_samples} samples)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
