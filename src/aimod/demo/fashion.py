"""Demo section 2: resnet-fashion's measured and predicted utility curve on Fashion-MNIST, with calibrated tiers."""

from __future__ import annotations

import time
from pathlib import Path

from aimod.calibrate.inputs import logit_rows
from aimod.calibrate.tiers import Tier
from aimod.calibrate.vision import calibrate_logits
from aimod.demo.context import TARGETS, Context
from aimod.demo.report import Figure, Section, Table
from aimod.eval.report import draw_metric, pyplot
from aimod.eval.sweep import CachedLogits, SweepResult, cache_logits, sweep

__all__ = ["SIGMAS", "STEPS", "fashion_curve"]

STEPS = 3
SIGMAS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 16.0, 20.0)
"""The utility sigmas of the curve."""


def fashion_curve(ctx: Context) -> Section:
    """Tiers from unlabelled calibration images; accuracy and agreement against sigma on held-out labelled ones."""
    from aimod.catalog import expect_vision, load
    from aimod.data.fashion_mnist import load_fashion_mnist

    started = time.perf_counter()
    n = ctx.budget.fashion_images
    ctx.step(f"resnet-fashion: tiers from 5000 unlabelled images, clean logits of {n} held-out ones")
    loaded = expect_vision(load("resnet-fashion"))
    calibration = logit_rows(loaded, "calibration")  # test images 0-4999, labels unused
    tiers = calibrate_logits(calibration.logits, TARGETS)
    ctx.shared["resnet-fashion tiers"] = tiers
    images, labels = load_fashion_mnist("test")
    held = cache_logits(
        loaded.logits, loaded.preprocess(images[5000 : 5000 + n]), labels[5000 : 5000 + n], loaded.id2label
    )

    ctx.step(f"resnet-fashion: {len(SIGMAS)} sigmas x {ctx.budget.seeds} seeds, measured and predicted")
    accuracy = sweep(held, SIGMAS, seeds=ctx.budget.seeds, model_name=loaded.name)
    agreeing = CachedLogits(held.logits, held.logits.argmax(1), held.id2label)  # labels = clean decisions
    agreement = sweep(agreeing, SIGMAS, seeds=ctx.budget.seeds, model_name=loaded.name)

    ctx.step("resnet-fashion: plot")
    _plot(accuracy, agreement, tiers, ctx.folder / "2-fashion-curve.png")

    tier_sigmas = [t.sigma for t in tiers]
    tier_accuracy = sweep(held, tier_sigmas, seeds=ctx.budget.seeds, model_name=loaded.name)
    tier_agreement = sweep(agreeing, tier_sigmas, seeds=ctx.budget.seeds, model_name=loaded.name)
    rows, findings, metrics = [], [], {}
    for t, p_acc, p_agree in zip(tiers, tier_accuracy.points, tier_agreement.points, strict=True):
        agree = p_agree.measured["accuracy"].mean
        acc = p_acc.measured["accuracy"].mean
        predicted_acc = p_acc.predicted["accuracy"]
        metrics.update({f"{t.name}_sigma": t.sigma, f"{t.name}_agreement": agree, f"{t.name}_accuracy": acc})
        rows.append(
            [
                t.name,
                f"{100 * t.target:.0f} %",
                round(t.sigma, 4),
                f"{100 * agree:.1f} %",
                f"{100 * acc:.1f} %",
                f"{100 * predicted_acc:.1f} %",
            ]
        )
        findings.append(
            f"{t.name}: sigma {t.sigma:.3f} for {100 * t.target:.0f} % agreement; held out: agreement "
            f"{100 * agree:.1f} %, accuracy {100 * acc:.1f} % (theory {100 * predicted_acc:.1f} %)"
        )
    worst = max(
        abs(p.measured[m].mean - p.predicted[m])
        for result in (accuracy, agreement)
        for p in result.points
        for m in p.predicted
    )
    clean_accuracy = accuracy.clean["accuracy"]
    findings.insert(
        0,
        f"Clean accuracy {100 * clean_accuracy:.2f} % on {n} held-out test images; largest gap "
        f"between measured mean and theory over the curve: {100 * worst:.2f} points",
    )
    curve_rows = [
        [
            p.value,
            f"{100 * q.measured['accuracy'].mean:.2f}",
            f"{100 * q.predicted['accuracy']:.2f}",
            f"{100 * p.measured['accuracy'].mean:.2f}",
            f"{100 * p.predicted['accuracy']:.2f}",
        ]
        for p, q in zip(accuracy.points, agreement.points, strict=True)
    ]
    return Section(
        key="fashion",
        title="2. The utility curve, measured and predicted (resnet-fashion on Fashion-MNIST)",
        intro=(
            "The same tiers on a ResNet-20 trained on Fashion-MNIST: sigma per tier from the theory on 5000 "
            f"unlabelled test images, then the whole curve on {n} other, labelled, test images. The model runs "
            "once; every point modulates its cached logits. The theory predicts each point from the clean "
            "logits alone, before any noise is drawn."
        ),
        findings=findings,
        metrics={**metrics, "clean_accuracy": clean_accuracy, "max_theory_gap": worst},
        figures=[
            Figure(
                "2-fashion-curve",
                "Agreement and accuracy against utility sigma",
                "Measured mean and 95 % band "
                f"over {ctx.budget.seeds} seeds, the theory's prediction (dashed), and the calibrated tiers.",
            ),
        ],
        tables=[
            Table(
                "2-fashion-tiers",
                "resnet-fashion tiers on held-out images",
                ["tier", "target agreement", "sigma", "measured agreement", "measured accuracy", "theory accuracy"],
                rows,
                note=f"Mean over {ctx.budget.seeds} seeds of fresh noise.",
            ),
            Table(
                "2-fashion-curve",
                "The curve",
                ["sigma", "agreement %", "theory %", "accuracy %", "theory %"],
                curve_rows,
            ),
        ],
        seconds=time.perf_counter() - started,
    )


def _plot(accuracy: SweepResult, agreement: SweepResult, tiers: tuple[Tier, ...], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, result, title in ((axes[0], agreement, "agreement with the full model"), (axes[1], accuracy, "accuracy")):
        draw_metric(ax, result, "accuracy")
        ax.set_ylabel(f"{title} (%)")
        for i, t in enumerate(tiers):
            ax.axvline(t.sigma, color=f"C{i + 2}", linewidth=0.9, linestyle=":", label=f"tier {t.name}")
        ax.legend(fontsize=6)
    fig.suptitle(f"resnet-fashion: utility modulation ({accuracy.num_samples} held-out test images)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
