"""Demo section 1: utility tiers on a real ImageNet classifier (efficientnet-lite0) and the bundled photos."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from aimod.calibrate.inputs import logit_rows
from aimod.calibrate.tiers import Tier
from aimod.calibrate.vision import calibrate_logits
from aimod.demo.context import TARGETS, Context
from aimod.demo.report import Figure, Section, Table
from aimod.digest import digest
from aimod.eval.report import pyplot
from aimod.eval.sweep import CachedLogits, Estimate, sweep
from aimod.modulation import Modulation
from aimod.redistribute import modulate_logits

__all__ = ["STEPS", "photo_tiers"]

STEPS = 4
_GREEN, _RED = "#1a7f37", "#cf222e"


def photo_tiers(ctx: Context) -> Section:
    """Calibrates tiers from unlabelled crops, checks them on held-out crops, and labels photos at each tier."""
    from aimod.catalog import expect_vision, load
    from aimod.data.photos import PHOTOS, photos

    started = time.perf_counter()
    n = ctx.budget.photo_crops
    ctx.step(f"efficientnet-lite0: clean logits of {n} unlabelled photo crops")
    loaded = expect_vision(load("efficientnet-lite0"))
    calibration = logit_rows(loaded, "calibration", n)
    tiers = calibrate_logits(calibration.logits, TARGETS, groups=calibration.groups)

    ctx.step(f"efficientnet-lite0: {n} held-out crops at each tier")
    held = logit_rows(loaded, "held-out", n)
    agreeing = CachedLogits(held.logits, held.logits.argmax(1), loaded.id2label)  # "accuracy" = agreement
    at_tiers = sweep(agreeing, [t.sigma for t in tiers], seeds=ctx.budget.seeds, model_name=loaded.name)
    tier_rows, measured = [], {}
    for t, point in zip(tiers, at_tiers.points, strict=True):
        e = measured[t.name] = point.measured["accuracy"]
        predicted_held = point.predicted["accuracy"]
        tier_rows.append(
            [
                t.name,
                f"{100 * t.target:.0f} %",
                round(t.sigma, 4),
                f"{100 * t.predicted:.1f} % [{100 * t.low:.1f}, {100 * t.high:.1f}]",
                f"{100 * predicted_held:.1f} %",
                f"{100 * e.mean:.1f} % [{100 * e.low:.1f}, {100 * e.high:.1f}]",
            ]
        )

    ctx.step(f"efficientnet-lite0: {ctx.budget.photos} photos at each tier (keyed noise)")
    images, names = photos(size=256)
    keys = digest(images)  # the same photo always gets the same noise: the same answer at its tier
    distinct = [i for i in range(len(names)) if int(keys[i]) not in {int(k) for k in keys[:i]}]  # cat is chelsea
    chosen = distinct[: ctx.budget.photos]
    images, names, keys = images[chosen], [names[i] for i in chosen], keys[chosen]
    logits = loaded.logits(loaded.preprocess(images))
    columns = ["photo", "full (sigma 0)"] + [f"{t.name} (sigma {t.sigma:.2f})" for t in tiers]
    decisions = [logits.argmax(1)] + [
        modulate_logits(logits, Modulation(sigma=t.sigma), noise=ctx.noise, keys=keys).argmax(1) for t in tiers
    ]
    labels = [[loaded.id2label[int(d[i])] for d in decisions] for i in range(len(names))]
    kept = [sum(row[0] == row[j] for row in labels) for j in range(len(decisions))]

    ctx.step("efficientnet-lite0: plots")
    _plot_photos(images, names, labels, ["full"] + [t.name for t in tiers], ctx.folder / "1-photo-tiers.png")
    _plot_curve(held.logits, tiers, measured, ctx.folder / "1-photo-curve.png")

    findings = [
        f"{t.name}: asked {100 * t.target:.0f} % agreement, got sigma {t.sigma:.3f}; measured on {n} held-out crops "
        f"{100 * measured[t.name].mean:.1f} % (theory {100 * t.predicted:.1f} % on the calibration crops)"
        for t in tiers
    ]
    findings.append(
        f"On {len(names)} photos, labels kept at each tier: "
        + ", ".join(f"{c}/{len(names)}" for c in kept)
        + " (full, "
        + ", ".join(t.name for t in tiers)
        + ")"
    )
    return Section(
        key="photos",
        title="1. Utility tiers on a real ImageNet classifier (efficientnet-lite0)",
        intro=(
            "The owner asks for tiers as a level of quality, 'agreement with the full model', not as a raw sigma. "
            f"aimod finds each tier's sigma exactly from the theory on {n} unlabelled random crops of the "
            f"{len(PHOTOS)} photos bundled with scikit-image (no labels, no sampling), then we measure the "
            "agreement on as many held-out crops, and show what each tier answers for the photos themselves. "
            "Photos are keyed: asking again gives the same label."
        ),
        findings=findings,
        metrics={
            **{f"{t.name}_sigma": t.sigma for t in tiers},
            **{f"{t.name}_measured": measured[t.name].mean for t in tiers},
            **{
                f"labels_kept_{name}": c / len(names)
                for name, c in zip(["full"] + [t.name for t in tiers], kept, strict=True)
            },
        },
        figures=[
            Figure(
                "1-photo-tiers",
                "Each photo's top-1 label at each tier",
                "Green: the full model's label; red: a "
                "different label. Noise is keyed on the photo, so these answers repeat exactly.",
            ),
            Figure(
                "1-photo-curve",
                "Agreement with the full model against sigma",
                "The theory's curve on the held-out "
                "crops, the calibrated tiers, and the agreement measured at each tier (mean and 95 % interval "
                f"over {ctx.budget.seeds} seeds).",
            ),
        ],
        tables=[
            Table(
                "1-photo-tier-calibration",
                "Tiers calibrated without labels, checked on held-out crops",
                [
                    "tier",
                    "target",
                    "sigma",
                    "predicted (calibration crops) [95 % CI]",
                    "theory (held-out)",
                    "measured (held-out) [95 % CI]",
                ],
                tier_rows,
                note="Intervals count photos, not crops: held-out crops are new views of the same "
                f"{len(PHOTOS)} photos.",
            ),
            Table(
                "1-photo-labels",
                "Top-1 label of each photo at each tier",
                columns,
                [[name, *row] for name, row in zip(names, labels, strict=True)],
            ),
        ],
        seconds=time.perf_counter() - started,
    )


def _plot_photos(images: torch.Tensor, names: list[str], labels: list[list[str]], tiers: list[str], path: Path) -> None:
    plt = pyplot()
    cols = min(6, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 3.1 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, name, row in zip(axes.flat, images, names, labels, strict=False):
        ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
        ax.set_title(name, fontsize=8)
        for j, (tier, label) in enumerate(zip(tiers, row, strict=True)):
            ax.text(
                0.5,
                -0.06 - 0.12 * j,
                f"{tier}: {label}"[:30],
                transform=ax.transAxes,
                ha="center",
                va="top",
                fontsize=7,
                color=_GREEN if label == row[0] else _RED,
            )
    fig.subplots_adjust(hspace=0.9, wspace=0.1, top=0.95, bottom=0.17)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_curve(logits: torch.Tensor, tiers: tuple[Tier, ...], measured: dict[str, Estimate], path: Path) -> None:
    from aimod import theory

    plt = pyplot()
    sigma_max = max(3 * max(t.sigma for t in tiers), 1.0)
    sigmas = torch.linspace(0, sigma_max, 41).tolist()
    curve = theory.agreement_curve(logits.double(), sigmas).mean(1)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.plot(sigmas, [100 * float(v) for v in curve], "--", color="C1", label="theory (clean logits only)")
    for i, t in enumerate(tiers):
        e = measured[t.name]
        ax.errorbar(
            [t.sigma],
            [100 * e.mean],
            yerr=[[100 * (e.mean - e.low)], [100 * (e.high - e.mean)]],
            fmt="o",
            color=f"C{i + 2}",
            capsize=3,
            label=f"{t.name}: target {100 * t.target:.0f} %, measured",
        )

        ax.axvline(t.sigma, color=f"C{i + 2}", linewidth=0.8, linestyle=":")
    ax.set_xlabel("utility sigma")
    ax.set_ylabel("agreement with the full model (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("efficientnet-lite0 on held-out photo crops", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
