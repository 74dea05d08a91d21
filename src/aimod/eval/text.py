"""Sweeps for language models: exact match, multiple choice and agreement against σ, or word rates against focus.

Utility sweeps (:func:`text_sweep` with ``kind="utility"``) measure, per σ and seed, on the fact set
(:mod:`aimod.data.facts`):

* ``exact_match``: greedy completions of each question's answer stem, normalised exact match;
* ``mc_accuracy``: the four choices scored by log-likelihood under the same modulation
  (:class:`~aimod.text.ChoiceLogits`: the model runs once, each point only modulates the cached logits);
* ``token_agreement`` (label-free): the share of the clean greedy completion's tokens that the modulated
  completion reproduces at the same position;
* ``first_token_agreement`` (label-free): the first generated token equals the clean one. This is one
  decision, so the theory predicts it exactly from the clean first-step logits (shown as ``predicted``).

All σ values of a seed run as one grid (:func:`aimod.text.generate_grid`: rows = prompts x σ, each prompt's
prefill shared); seed ``s`` is ``FieldNoise.for_text("aimod-sweep-seed-<s>")``, the noise ``aimod serve`` gives
a language model, so every point is reproducible.

Focus sweeps (``kind="focus"``) generate free answers to the same questions and report ``word_rate``, the
share of completions that contain one of the focused words (whole words, any case), and ``token_agreement``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch

from aimod.data.facts import FactItem
from aimod.errors import InvalidArgumentError
from aimod.eval.sweep import SweepPoint, SweepResult, estimate
from aimod.field import FieldNoise
from aimod.modulation import Modulation
from aimod.noise import SeededNoise

__all__ = ["text_sweep", "token_agreement", "word_rate"]

_ORDER = ("exact_match", "mc_accuracy", "word_rate", "token_agreement", "first_token_agreement")


def token_agreement(clean: Sequence[Sequence[int]], modulated: Sequence[Sequence[int]]) -> float:
    """Mean over completions of the share of clean tokens reproduced at the same position.

    Example:
        >>> token_agreement([[1, 2, 3, 4], [5]], [[1, 2, 9, 4], [6, 5]])
        0.375
    """
    shares = [
        sum(a == b for a, b in zip(c, m, strict=False)) / len(c) if c else float(not m)
        for c, m in zip(clean, modulated, strict=True)
    ]
    return sum(shares) / len(shares)


def word_rate(texts: Sequence[str], words: Sequence[str]) -> float:
    """Share of ``texts`` containing at least one of ``words`` as a whole word, ignoring case.

    Example:
        >>> word_rate(["Paris is big.", "I like parisian food", "PARIS!"], ["paris"])
        0.6666666666666666
    """
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)
    return sum(bool(pattern.search(t)) for t in texts) / len(texts)


def text_sweep(
    model: Any,
    tokenizer: Any,
    items: Sequence[FactItem],
    values: Sequence[float],
    *,
    kind: Literal["utility", "focus"] = "utility",
    focus_words: Sequence[str] = (),
    seeds: int = 3,
    model_name: str = "",
    max_new_tokens: int | None = None,
    batch_size: int = 16,
    multiple_choice: bool = True,
    predict: bool = True,
    progress: Callable[[int], None] | None = None,
) -> SweepResult:
    """Measures a language model over a grid of utility σ or focus strengths, with 95 % intervals over seeds.

    Args:
        model: A Hugging Face causal LM.
        tokenizer: Its tokenizer.
        items: Questions (:func:`aimod.data.facts.fact_items`).
        values: Utility σ (``>= 0``) or signed focus strengths of ``focus_words``.
        kind: ``"utility"`` or ``"focus"``.
        focus_words: Words to promote (positive values) or suppress (negative) in focus sweeps.
        seeds: Noise keys per point.
        model_name: For the report.
        max_new_tokens: Default 8 for answers to stems (utility), 24 for free answers (focus).
        batch_size: Prompts per ``generate`` call (each with ``len(values)`` rows).
        multiple_choice: Also score the multiple-choice form (utility sweeps).
        predict: Add the theory's first-token prediction (utility sweeps).
        progress: Called with 1 after each seed's generation grid and each multiple-choice point.
    """
    if kind not in ("utility", "focus"):
        raise InvalidArgumentError("kind", kind, "'utility' or 'focus'")
    if not items or not values or seeds < 1:
        raise InvalidArgumentError(
            "items, values, seeds", (len(items), len(values), seeds), "non-empty, non-empty, >= 1"
        )
    if kind == "utility" and any(v < 0 for v in values):
        raise InvalidArgumentError("values", list(values), "utility sigmas >= 0")
    if kind == "focus" and not focus_words:
        raise InvalidArgumentError("focus_words", focus_words, "one or more words for a focus sweep")
    from aimod.text.generation import format_prompts, generate_grid
    from aimod.text.scoring import next_token_logits

    utility = kind == "utility"
    tokens = max_new_tokens or (8 if utility else 24)
    mods = [Modulation(sigma=v) if utility else Modulation(focus=dict.fromkeys(focus_words, v)) for v in values]
    questions = [i.question for i in items]
    stems = [i.stem for i in items] if utility else None

    # the clean completion (noise-free, the same for every key) is the reference for agreement
    clean = generate_grid(
        model,
        tokenizer,
        questions,
        [Modulation()],
        noise=SeededNoise(0),
        max_new_tokens=tokens,
        batch_size=batch_size,
        reply_prefix=stems,
    )
    runs: list[list[dict[str, float]]] = [[] for _ in values]
    noisy = [v for v, m in enumerate(mods) if not m.is_identity]  # sigma 0 and no focus: the clean completion
    for seed in range(seeds):
        grid = (
            generate_grid(
                model,
                tokenizer,
                questions,
                [mods[v] for v in noisy],
                noise=FieldNoise.for_text(f"aimod-sweep-seed-{seed}"),
                max_new_tokens=tokens,
                batch_size=batch_size,
                reply_prefix=stems,
            )
            if noisy
            else None
        )
        for v in range(len(values)):
            if v in noisy and grid is not None:
                texts, ids = grid.texts[noisy.index(v)], grid.token_ids[noisy.index(v)]
            else:
                texts, ids = clean.texts[0], clean.token_ids[0]
            metrics = {"token_agreement": token_agreement(clean.token_ids[0], ids)}
            if utility:
                metrics["exact_match"] = sum(i.is_correct(t) for i, t in zip(items, texts, strict=True)) / len(items)
                firsts = [bool(c[:1] == m[:1]) for c, m in zip(clean.token_ids[0], ids, strict=True)]
                metrics["first_token_agreement"] = sum(firsts) / len(firsts)
            else:
                metrics["word_rate"] = word_rate(texts, focus_words)
            runs[v].append(metrics)
        if progress is not None:
            progress(1)

    predicted: list[dict[str, float]] = [{} for _ in values]
    clean_metrics: dict[str, Any] = {}
    if utility:
        clean_metrics["exact_match"] = sum(i.is_correct(t) for i, t in zip(items, clean.texts[0], strict=True)) / len(
            items
        )
        contexts, special = format_prompts(tokenizer, questions, reply_prefix=stems)
        if predict:
            from aimod.theory import agreement_curve

            first = next_token_logits(model, tokenizer, contexts, batch_size=batch_size, add_special_tokens=not special)
            curve = agreement_curve(first, list(values)).mean(1)
            for v in range(len(values)):
                predicted[v]["first_token_agreement"] = float(curve[v])
        if multiple_choice:
            from aimod.text.scoring import choice_logits

            scored = choice_logits(
                model,
                tokenizer,
                contexts,
                [i.choices for i in items],
                batch_size=batch_size,
                add_special_tokens=not special,
            )
            labels = torch.tensor([i.label for i in items])
            clean_ll = scored.loglikelihoods(Modulation(), noise=SeededNoise(0))
            clean_metrics["mc_accuracy"] = float((clean_ll.argmax(1) == labels).double().mean())
            for v, mod in enumerate(mods):
                for seed in range(seeds):
                    ll = scored.loglikelihoods(mod, noise=FieldNoise.for_text(f"aimod-sweep-seed-{seed}"))
                    runs[v][seed]["mc_accuracy"] = float((ll.argmax(1) == labels).double().mean())
                if progress is not None:
                    progress(1)
    else:
        clean_metrics["word_rate"] = word_rate(clean.texts[0], focus_words)

    order = [m for m in _ORDER if m in runs[0][0]]
    points = [
        SweepPoint(float(value), {name: estimate([r[name] for r in runs[v]]) for name in order}, predicted[v])
        for v, value in enumerate(values)
    ]
    return SweepResult(
        model=model_name,
        kind=kind,
        focus_class=", ".join(focus_words) if not utility else None,
        seeds=seeds,
        num_samples=len(items),
        clean=clean_metrics,
        points=points,
    )
