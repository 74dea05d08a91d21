"""Demo section 4: a real language model (smollm2-135m) at each tier, and word focus, in transformers ``generate``."""

from __future__ import annotations

import time
from pathlib import Path

from aimod.calibrate.tiers import Tier
from aimod.demo.context import TARGETS, Context
from aimod.demo.report import Figure, Section, Table
from aimod.eval.report import pyplot
from aimod.eval.sweep import SweepResult
from aimod.eval.text import word_rate
from aimod.modulation import Modulation

__all__ = ["FOCUS_EXAMPLES", "STEPS", "text_tiers"]

STEPS = 5
TOKENS = 16
"""New tokens per completion in calibration and its held-out check."""
FOCUS_EXAMPLES = (
    ("Suggest a place to travel for a holiday.", "Japan", (0.0, 2.0, 4.0, 8.0)),
    ("What is a good hobby to take up?", "gardening", (0.0, 4.0)),
    ("Which programming language should a beginner learn first?", "python", (0.0, -8.0)),
)
"""(prompt, word, focus strengths): promotion at rising strength, and one suppression."""


def text_tiers(ctx: Context) -> Section:
    """Calibrates text tiers, answers questions at each, checks them on held-out questions, shows word focus."""
    from aimod.calibrate.text import calibrate_text, measure_token_agreement
    from aimod.catalog import expect_text, load
    from aimod.data.facts import CATEGORIES
    from aimod.eval.text import text_sweep
    from aimod.text.generation import generate, generate_grid

    started = time.perf_counter()
    budget = ctx.budget
    ctx.step("smollm2-135m: loading (the first run converts its GGUF file, about 20 s)")
    smollm2 = expect_text(load("smollm2-135m"))
    model, tokenizer = smollm2.model, smollm2.tokenizer

    ctx.step(f"smollm2-135m: calibrating tiers on {budget.text_calibration} unlabelled questions")
    prompts = smollm2.inputs("calibration", budget.text_calibration).prompts
    tiers, settings = calibrate_text(model, tokenizer, prompts, TARGETS, keys=budget.text_keys, max_new_tokens=TOKENS)
    mods = [Modulation()] + [Modulation(sigma=t.sigma) for t in tiers]
    names = ["full"] + [t.name for t in tiers]

    ctx.step("smollm2-135m: the same questions at each tier")
    held = smollm2.inputs("held-out", budget.text_heldout)
    held_items = held.items
    shown = [next(i for i in held_items if i.category == c) for c in CATEGORIES]
    answers = generate_grid(
        model, tokenizer, [i.question for i in shown], mods, noise=ctx.text_noise, max_new_tokens=24
    )
    answer_rows = [[item.question] + [answers.texts[m][q] for m in range(len(mods))] for q, item in enumerate(shown)]

    ctx.step(f"smollm2-135m: {len(held_items)} held-out questions at each tier")
    held_prompts = held.prompts
    clean = generate_grid(
        model, tokenizer, held_prompts, [Modulation()], noise=ctx.text_noise, max_new_tokens=TOKENS, batch_size=16
    )  # the batch size of the measurement below: the model's float rounding depends on it
    agreement = measure_token_agreement(
        model,
        tokenizer,
        held_prompts,
        [t.sigma for t in tiers],
        keys=[f"held-out-{k}" for k in range(budget.text_keys)],
        clean=clean.token_ids[0],
        max_new_tokens=TOKENS,
        batch_size=16,
    ).mean(1)
    quality = text_sweep(
        model,
        tokenizer,
        held_items,
        [0.0] + [t.sigma for t in tiers],
        seeds=budget.text_keys,
        model_name="smollm2-135m",
        multiple_choice=budget.text_multiple_choice,
    )
    _plot(tiers, agreement.tolist(), quality, ctx.folder / "4-text-tiers.png")

    ctx.step("smollm2-135m: word focus")
    focus_prompts, focus_mods = [], []
    for prompt, word, strengths in FOCUS_EXAMPLES:
        for s in strengths:
            focus_prompts.append(prompt)
            focus_mods.append(Modulation(focus={word: s}) if s else Modulation())
    focused = generate(model, tokenizer, focus_prompts, focus_mods, noise=ctx.text_noise, max_new_tokens=24)
    focus_rows = [
        [p, "none" if m.is_identity else f"{next(iter(m.focus))}={next(iter(m.focus.values())):+g}", text]
        for p, m, text in zip(focus_prompts, focus_mods, focused, strict=True)
    ]

    tier_rows = []
    for i, t in enumerate(tiers):
        p = quality.points[i + 1]
        tier_rows.append(
            [
                t.name,
                f"{100 * t.target:.0f} %",
                round(t.sigma, 4),
                f"{100 * t.predicted:.1f} % [{100 * t.low:.1f}, {100 * t.high:.1f}]",
                f"{100 * float(agreement[i]):.1f} %",
                f"{100 * p.measured['exact_match'].mean:.1f} %",
                f"{100 * p.measured['mc_accuracy'].mean:.1f} %" if "mc_accuracy" in p.measured else "-",
                f"{100 * p.measured['first_token_agreement'].mean:.1f} % "
                f"({100 * p.predicted['first_token_agreement']:.1f} %)",
            ]
        )
    clean_point = quality.points[0]
    findings = [
        f"{t.name}: sigma {t.sigma:.3f} for {100 * t.target:.0f} % token agreement; held out "
        f"{100 * float(agreement[i]):.1f} %, "
        f"exact match {100 * quality.points[i + 1].measured['exact_match'].mean:.0f} %"
        for i, t in enumerate(tiers)
    ]
    findings.insert(
        0,
        f"Full model: exact match {100 * clean_point.measured['exact_match'].mean:.0f} % on "
        f"{len(held_items)} held-out fact questions",
    )
    promoted_count = 0  # examples whose word is absent unfocused and present at some positive strength
    for prompt, word, strengths in FOCUS_EXAMPLES:
        said = {
            s: word_rate([text], [word]) > 0
            for p, m, text in zip(focus_prompts, focus_mods, focused, strict=True)
            if p == prompt
            for s in [next(iter(m.focus.values()), 0.0)]
        }
        promoted = [s for s in strengths if s > 0 and said[s]]
        promoted_count += bool(promoted) and not said[0.0]
        if any(s > 0 for s in strengths):
            tried = ", ".join(f"+{s:g}" for s in strengths if s > 0)
            where = (
                f"at {', '.join(f'+{s:g}' for s in promoted)} (tried {tried})" if promoted else f"at none of {tried}"
            )
            findings.append(
                f"Focus on {word!r} ('{prompt}'): the answer {'names' if said[0.0] else 'does not name'} "
                f"it unfocused and names it {where}"
            )
        for s in (s for s in strengths if s < 0):
            now = "still names" if said[s] else "no longer names"
            before = "names" if said[0.0] else "does not name"
            findings.append(f"Focus {word}={s:+g} ('{prompt}'): the answer {now} {word!r} (unfocused: {before} it)")
    return Section(
        key="text",
        title="4. A language model at each tier, and word focus (smollm2-135m, transformers generate)",
        intro=(
            "The real SmolLM2-135M-Instruct (Llama architecture) generates greedily through transformers' generate "
            "with aimod's logits processor. A completion is a chain of decisions, so text tiers are calibrated by "
            f"measuring the token agreement of {TOKENS}-token answers with the full model's, started from the "
            "theory's exact first-token sigma. The same questions are then answered at each tier (noise keyed on "
            "each step's clean next-token distribution, as aimod serve does: asking again gives the same answer), "
            "and the tiers are checked on held-out questions. "
            "Focus names words; aimod expands them to their tokens."
        ),
        findings=findings,
        metrics={
            "exact_match_full": clean_point.measured["exact_match"].mean,
            **{f"{t.name}_sigma": t.sigma for t in tiers},
            **{f"{t.name}_token_agreement": float(agreement[i]) for i, t in enumerate(tiers)},
            **{
                f"{t.name}_exact_match": quality.points[i + 1].measured["exact_match"].mean for i, t in enumerate(tiers)
            },
            "focus_words_promoted": promoted_count / sum(any(s > 0 for s in e[2]) for e in FOCUS_EXAMPLES),
        },
        figures=[
            Figure(
                "4-text-tiers",
                "Each text tier on held-out questions",
                f"Target and held-out token agreement of {TOKENS}-token answers with the full model's, and exact "
                "match of short answers against the facts (95 % interval of the calibration in black).",
            ),
        ],
        tables=[
            Table(
                "4-text-answers",
                "The same questions at each tier",
                ["question", *names],
                answer_rows,
                note="Greedy, 24 new tokens, keyed noise.",
            ),
            Table(
                "4-text-tiers",
                "Text tiers: calibrated, then measured on held-out questions",
                [
                    "tier",
                    "target",
                    "sigma",
                    "predicted [95 % CI]",
                    "held-out token agreement",
                    "exact match",
                    "MC accuracy",
                    "first-token agreement (theory)",
                ],
                tier_rows,
                note=f"Calibrated on {len(prompts)} questions with {budget.text_keys} noise key(s) per point "
                f"({settings['measured_sigmas']} sigmas measured); held out: {len(held_items)} other questions.",
            ),
            Table(
                "4-text-focus",
                "Word focus (user)",
                ["prompt", "focus", "answer"],
                focus_rows,
                note="Positive strength promotes the word's tokens, negative suppresses them; a strength far "
                "above the logit gaps makes the model repeat the word.",
            ),
        ],
        seconds=time.perf_counter() - started,
    )


def _plot(tiers: tuple[Tier, ...], held_out: list[float], quality: SweepResult, path: Path) -> None:
    plt = pyplot()
    names = ["full"] + [t.name for t in tiers]
    targets = [1.0] + [t.target for t in tiers]
    agreement = [1.0, *held_out]
    exact = [p.measured["exact_match"].mean for p in quality.points]
    x = range(len(names))
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    width = 0.26
    ax.bar([i - width for i in x], [100 * v for v in targets], width, color="C7", label="target token agreement")
    ax.errorbar(
        [i - width for i in x[1:]],
        [100 * t.predicted for t in tiers],
        yerr=[[100 * (t.predicted - t.low) for t in tiers], [100 * (t.high - t.predicted) for t in tiers]],
        fmt="none",
        ecolor="k",
        capsize=3,
    )
    ax.bar(list(x), [100 * v for v in agreement], width, color="C0", label="held-out token agreement")
    ax.bar([i + width for i in x], [100 * v for v in exact], width, color="C2", label="held-out exact match")
    ax.set_xticks(
        list(x), [f"{n}\nsigma {s:.2f}" for n, s in zip(names, [0.0] + [t.sigma for t in tiers], strict=True)]
    )
    ax.set_ylim(0, 105)
    ax.set_ylabel("%")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(f"smollm2-135m tiers ({quality.num_samples} held-out questions)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
