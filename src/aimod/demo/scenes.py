"""Demo section 3: focus modulation on a real SegFormer (segformer-scenes): one class reported more."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import Tensor

from aimod.demo.context import Context
from aimod.demo.report import Figure, Section, Table
from aimod.digest import digest
from aimod.eval.metrics import confusion_matrix, metrics_from_confusion
from aimod.eval.report import plot_sweep, pyplot
from aimod.eval.sweep import cache_logits, sweep
from aimod.modulation import Modulation
from aimod.redistribute import modulate_logits

__all__ = ["FOCUS_CLASS", "FOCUS_SIGMAS", "STEPS", "scene_focus"]

STEPS = 3
FOCUS_CLASS = "bag"
"""The class the user asks the segmenter to attend to."""
FOCUS_SIGMAS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
"""Focus strengths (std of the one-signed noise on that class's logit)."""


def scene_focus(ctx: Context) -> Section:
    """A focus sweep on held-out scenes (recall, precision, IoU, mIoU; measured and predicted) and overlays."""
    from aimod.catalog import expect_vision, load

    started = time.perf_counter()
    ctx.step(f"segformer-scenes: clean logits of {ctx.budget.scenes} held-out scenes")
    loaded = expect_vision(load("segformer-scenes"))
    data = loaded.inputs("evaluation", ctx.budget.scenes)
    assert data.images is not None
    assert data.labels is not None  # labelled scenes
    cached = cache_logits(loaded.logits, data.images, data.labels, loaded.id2label)

    ctx.step(f"segformer-scenes: focus on {FOCUS_CLASS!r}, {len(FOCUS_SIGMAS)} strengths x {ctx.budget.seeds} seeds")
    result = sweep(
        cached, FOCUS_SIGMAS, kind="focus", focus_class=FOCUS_CLASS, seeds=ctx.budget.seeds, model_name=loaded.name
    )

    ctx.step("segformer-scenes: overlays and plots")
    focus_id = next(i for i, name in loaded.id2label.items() if name == FOCUS_CLASS)
    scene = _pick_scene(cached.logits, cached.labels, focus_id)
    overlays = _plot_overlays(
        data.images[scene],
        cached.logits[scene],
        cached.labels[scene],
        focus_id,
        ctx,
        ctx.folder / "3-scene-overlays.png",
    )
    plot_sweep(result, ctx.folder / "3-scene-focus-curve.png")

    rows = []
    for p in result.points:
        cells: list[object] = [p.value]
        for metric in ("recall", "precision", "IoU", "mIoU"):
            cells.append(
                f"{100 * p.measured[metric].mean:.1f} / {100 * p.predicted[metric]:.1f} / "
                f"{100 * p.baseline[metric]:.1f}"
            )
        rows.append(cells)
    first, strong = result.points[0], next(p for p in result.points if p.value == 2.0)
    findings = [
        f"Recall of {FOCUS_CLASS!r} over {ctx.budget.scenes} scenes: {100 * first.measured['recall'].mean:.1f} % "
        f"clean -> {100 * strong.measured['recall'].mean:.1f} % at focus sigma 2 (theory "
        f"{100 * strong.predicted['recall']:.1f} %), -> {100 * result.points[-1].measured['recall'].mean:.1f} % at "
        f"{result.points[-1].value:g}",
        f"The price: precision {100 * first.measured['precision'].mean:.1f} % -> "
        f"{100 * strong.measured['precision'].mean:.1f} %, mIoU {100 * first.measured['mIoU'].mean:.1f} % -> "
        f"{100 * strong.measured['mIoU'].mean:.1f} % at sigma 2",
        "Scene shown: " + ", ".join(f"sigma {v:g}: recall {100 * r:.0f} %" for v, r in overlays),
    ]
    return Section(
        key="scenes",
        title=f"3. Focus on one class of a SegFormer (segformer-scenes, {FOCUS_CLASS!r})",
        intro=(
            f"A user asks the segmenter to attend to {FOCUS_CLASS!r}: aimod adds one-signed (half-normal) noise "
            "to that class's logit at every pixel, so the class is reported more often while the order of the "
            "other classes is untouched. Recall of the class rises, precision falls; the theory predicts both, and "
            "a deterministic bias of the same mean shows what the noise adds. The overlays use keyed noise (the same "
            "scene always looks the same); the curves average seeded noise."
        ),
        findings=findings,
        metrics={
            **{f"recall_{p.value:g}": p.measured["recall"].mean for p in result.points},
            **{f"precision_{p.value:g}": p.measured["precision"].mean for p in result.points},
            **{f"mIoU_{p.value:g}": p.measured["mIoU"].mean for p in result.points},
            "max_theory_gap": max(
                abs(p.measured[k].mean - p.predicted[k]) for p in result.points for k in ("recall", "precision", "mIoU")
            ),
        },
        figures=[
            Figure(
                "3-scene-overlays",
                f"One held-out scene at increasing focus on {FOCUS_CLASS!r}",
                f"Pixels decided as {FOCUS_CLASS!r} in red, other classes in grey; the ground truth's "
                f"{FOCUS_CLASS!r} outline in yellow. Recall and precision are for this scene.",
            ),
            Figure(
                "3-scene-focus-curve",
                "Focus curves over the held-out scenes",
                f"Measured (mean, 95 % band over {ctx.budget.seeds} seeds), theory, and the bias baseline.",
            ),
        ],
        tables=[
            Table(
                "3-scene-focus",
                f"Focus on {FOCUS_CLASS!r}: measured / theory / deterministic bias (%)",
                ["focus sigma", "recall", "precision", "IoU", "mIoU"],
                rows,
                note=f"{ctx.budget.scenes} scenes of 128 x 128 pixels, mean over {ctx.budget.seeds} seeds.",
            ),
        ],
        seconds=time.perf_counter() - started,
    )


def _pick_scene(logits: Tensor, labels: Tensor, focus_id: int) -> int:
    """The scene with the most pixels of the class that the clean model misses (at least 100 of it present)."""
    clean = logits.argmax(1)
    present = (labels == focus_id).flatten(1).sum(1)
    missed = ((labels == focus_id) & (clean != focus_id)).flatten(1).sum(1)
    missed = torch.where(present >= 100, missed, torch.full_like(missed, -1))
    return int(missed.argmax())


def _plot_overlays(
    image: Tensor, logits: Tensor, labels: Tensor, focus_id: int, ctx: Context, path: Path
) -> list[tuple[float, float]]:
    """Image, then the decided mask at each focus sigma; returns (sigma, recall) per panel."""
    plt = pyplot()
    key = digest(image[None])
    fig, axes = plt.subplots(1, 1 + len(FOCUS_SIGMAS), figsize=(2.2 * (1 + len(FOCUS_SIGMAS)), 2.7))
    axes[0].imshow(_display(image))
    axes[0].set_title("scene", fontsize=8)
    truth = (labels == focus_id).numpy()
    recalls = []
    for ax, sigma in zip(axes[1:], FOCUS_SIGMAS, strict=True):
        m = Modulation(focus={focus_id: sigma})
        decided = modulate_logits(logits[None], m, dim=1, noise=ctx.noise, keys=key).argmax(1)[0]
        metrics = metrics_from_confusion(confusion_matrix(decided, labels, logits.shape[0]))
        recall, precision = float(metrics.recall[focus_id]), float(metrics.precision[focus_id])
        recalls.append((sigma, recall))
        rgb = torch.full((*decided.shape, 3), 0.82)
        rgb[decided != 0] = 0.55  # other objects grey, background light
        rgb[decided == focus_id] = torch.tensor([0.85, 0.1, 0.1])
        ax.imshow(rgb.numpy())
        ax.contour(truth, levels=[0.5], colors="gold", linewidths=0.8)
        shown = "-" if precision != precision else f"{100 * precision:.0f} %"  # NaN: no pixel decided as the class
        ax.set_title(f"focus {sigma:g}\nrecall {100 * recall:.0f} %, precision {shown}", fontsize=7)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return recalls


def _display(inputs: Tensor) -> object:
    """A preprocessed (normalised) image back to [0, 1] for display."""
    x = inputs.permute(1, 2, 0)
    x = (x - x.min()) / (x.max() - x.min()).clamp_min(1e-6)
    return x.numpy()
