"""Demo section 5: same query, same answer. The repeated-query attack against fresh and against keyed noise."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import torch
from torch import Tensor

from aimod.demo.context import SECRET, Context
from aimod.demo.report import Figure, Section, Table
from aimod.eval.attack import majority_vote, perturb_pixels
from aimod.eval.report import pyplot
from aimod.eval.sweep import cache_logits
from aimod.field import FieldNoise
from aimod.modulation import Modulation
from aimod.noise import NoiseSource, SeededNoise
from aimod.redistribute import modulate_logits

__all__ = ["STEPS", "repeated_queries"]

STEPS = 2
FINGERPRINT_STEP = 0.5
"""The server's default quantisation step of the logit fingerprint (``[server] fingerprint_step``)."""


def repeated_queries(ctx: Context) -> Section:
    """Asks each test image many times at the free tier and keeps the majority answer."""
    from aimod import theory
    from aimod.calibrate.inputs import logit_rows
    from aimod.calibrate.vision import calibrate_logits
    from aimod.catalog import expect_vision, load
    from aimod.content_keys import exact_keys, fingerprint_keys
    from aimod.data.fashion_mnist import load_fashion_mnist
    from aimod.demo.context import TARGETS

    started = time.perf_counter()
    n, q = ctx.budget.attack_inputs, ctx.budget.attack_queries
    ctx.step(f"attack: {n} images x {q} queries at the free tier")
    loaded = expect_vision(load("resnet-fashion"))
    tiers = ctx.shared.get("resnet-fashion tiers") or calibrate_logits(
        logit_rows(loaded, "calibration").logits, TARGETS
    )
    tier = next(t for t in tiers if t.name == "free")
    m = Modulation(sigma=tier.sigma)
    images = load_fashion_mnist("test")[0][5000 : 5000 + n]  # held-out images, (n, 28, 28) uint8

    def logits_of(pixels: Tensor) -> Tensor:
        return cache_logits(loaded.logits, loaded.preprocess(pixels), None, loaded.id2label, batch_size=2000).logits

    clean_logits = logits_of(images)
    clean = clean_logits.argmax(1)
    copies = images.repeat_interleave(q, dim=0)  # every image asked q times, unchanged
    repeated = clean_logits.repeat_interleave(q, dim=0)

    def agreement_of_majority(logits: Tensor, noise: NoiseSource, keys: Tensor | None) -> float:
        decided = modulate_logits(logits, m, noise=noise, keys=keys).argmax(1).view(n, q)
        return float((majority_vote(decided, loaded.num_classes) == clean).float().mean())

    single = float(
        (modulate_logits(clean_logits, m, noise=ctx.noise, keys=exact_keys(list(images[:, None]))).argmax(1) == clean)
        .float()
        .mean()
    )
    fresh = agreement_of_majority(repeated, SeededNoise(0), None)
    keyed = agreement_of_majority(repeated, ctx.noise, exact_keys(list(copies[:, None])))

    ctx.step(f"attack: {n} images x {q} near-duplicates (pixel noise of std 2)")
    near = perturb_pixels(copies, "gauss", 2.0, torch.Generator().manual_seed(0))
    near_logits = logits_of(near)
    near_keys = exact_keys(list(near[:, None]))
    near_exact = agreement_of_majority(near_logits, ctx.noise, near_keys)
    exact_distinct = sum(len(set(k.tolist())) for k in near_keys.view(n, q)) / n
    fingerprints = fingerprint_keys(near_logits, FINGERPRINT_STEP)
    near_fingerprint = agreement_of_majority(near_logits, ctx.noise, fingerprints)
    distinct = sum(len(set(k.tolist())) for k in fingerprints.view(n, q)) / n
    near_field = agreement_of_majority(near_logits, FieldNoise(SECRET), fingerprints)  # the keys seed focus only
    predicted = float(theory.agreement(clean_logits.double(), m).mean())

    results: list[tuple[str, float, float | int | str]] = [
        ("one query (an honest user)", single, 1),
        (f"majority of {q}, fresh noise per query (the published code)", fresh, q),
        (f"majority of {q}, keyed noise (aimod)", keyed, 1),
        (f"majority of {q} near-duplicates, keyed on exact pixels", near_exact, exact_distinct),
        (f"majority of {q} near-duplicates, keyed on the logit fingerprint", near_fingerprint, distinct),
        (f"majority of {q} near-duplicates, noise a field of the clean logits (aimod serve)", near_field, "-"),
    ]
    _plot(results, tier.target, ctx.folder / "5-attack.png")
    return Section(
        key="attack",
        title="5. Same query, same answer: the repeated-query attack",
        intro=(
            f"A client of the free tier (sigma {tier.sigma:.3f}, {100 * tier.target:.0f} % agreement on "
            "resnet-fashion) "
            f"sends each of {n} held-out images {q} times and keeps the majority answer. With fresh noise per query "
            "the majority converges to the full model's answer: paying for more queries undoes the tier. aimod keys "
            "the noise on the query's content, so every copy gets the same answer. Near-duplicates (each copy with "
            "faint pixel noise) defeat a key on the exact pixels and partly a key on a quantised fingerprint of the "
            "clean logits; aimod serve makes the noise a smooth keyed field of the clean logits instead, so "
            "near-duplicates get nearly the same noise with no boundary to step across."
        ),
        findings=[
            f"One query agrees with the full model {100 * single:.1f} % of the time (theory {100 * predicted:.1f} %)",
            f"Majority of {q} with fresh noise: {100 * fresh:.1f} %; with aimod's keyed noise: {100 * keyed:.1f} %",
            f"Near-duplicates: exact keys {100 * near_exact:.1f} %, fingerprint keys {100 * near_fingerprint:.1f} % "
            f"({distinct:.2f} distinct keys per image over {q} copies), the field {100 * near_field:.1f} %",
        ],
        metrics={
            "sigma": tier.sigma,
            "single": single,
            "predicted_single": predicted,
            "fresh_majority": fresh,
            "keyed_majority": keyed,
            "near_exact_majority": near_exact,
            "near_fingerprint_majority": near_fingerprint,
            "near_field_majority": near_field,
            "fingerprint_keys_per_input": distinct,
        },
        figures=[
            Figure(
                "5-attack",
                "Agreement of the majority answer with the full model",
                "Higher means the attack recovered more of the full model; the dashed line is the tier's target.",
            ),
        ],
        tables=[
            Table(
                "5-attack",
                "The repeated-query attack",
                ["queries", "agreement with the full model %", "distinct noise draws per image"],
                [[name, f"{100 * v:.1f}", f"{d:.2f}" if isinstance(d, float) else d] for name, v, d in results],
                note=f"{n} held-out Fashion-MNIST test images.",
            ),
        ],
        seconds=time.perf_counter() - started,
    )


def _plot(results: list[tuple[str, float, float | int | str]], target: float, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    colors = ["C7", "C3", "C2", "C3", "C1", "C2"]
    y = list(range(len(results)))[::-1]
    ax.barh(y, [100 * v for _, v, _ in results], color=colors[: len(results)])
    for yy, (_, v, _) in zip(y, results, strict=True):
        ax.text(100 * v + 1, yy, f"{100 * v:.1f} %", va="center", fontsize=8)
    ax.set_yticks(y, [textwrap.fill(name, 44) for name, _, _ in results], fontsize=7)
    ax.axvline(100 * target, color="k", linestyle="--", linewidth=0.8, label=f"tier target {100 * target:.0f} %")
    ax.set_xlim(0, 110)
    ax.set_xlabel("agreement of the answer with the full model (%)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
