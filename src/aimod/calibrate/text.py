"""Calibration for language models: σ per tier fitted to measured token agreement, started from the theory.

The theory is exact for one decision, i.e. one decoding step. A completion is a chain of decisions, each
made after the earlier (possibly changed) tokens, so its agreement with the clean completion falls faster
with σ than one step's. The method:

1. **Start** (theory): the clean first-step logits of the prompts give, per tier, the σ₀ at which the first
   token agrees with the target probability (:func:`aimod.theory.sigma_for`). A whole completion agrees
   less, so the tier's σ lies below σ₀.
2. **Measure**: greedy completions of every prompt at one geometric grid of σ from 0.03 x the smallest σ₀
   to the largest σ₀, for every tier at once (one :func:`aimod.text.generate_grid` per key, rows =
   prompts x σ), under ``keys`` different noise keys; agreement is the token agreement with the clean completion
   (:func:`aimod.eval.text.token_agreement`), averaged over prompts and keys.
3. **Fit**: the grid is extended (σ / 4 below, σ x 2 above) until it brackets every target; the measured
   curve, made non-increasing, is interpolated linearly in log σ and solved for the target; σ x 0.85 and
   x 1.15 around each solution (``rounds=2``) are measured and the fit repeated.
4. **Intervals**: the prompts are resampled (bootstrap, 200 draws); each draw gives a σ for the target and
   an agreement at the chosen σ, whose 2.5 and 97.5 percentiles are the intervals recorded. The noise keys
   are not resampled, so with few keys the intervals are somewhat narrow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from aimod.calibrate.tiers import Tier, check_targets
from aimod.errors import InvalidArgumentError, InvalidTargetError
from aimod.field import FieldNoise
from aimod.modulation import Modulation
from aimod.noise import SeededNoise

__all__ = ["calibrate_text", "measure_token_agreement"]

_EXTENSIONS = 8  # grid extensions (each /4 below or x2 above) before a target is declared out of reach


def measure_token_agreement(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    sigmas: Sequence[float],
    *,
    keys: Sequence[str],
    clean: list[list[int]],
    max_new_tokens: int,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> Tensor:
    """Token agreement with ``clean`` per (σ, prompt), averaged over ``keys``: float64 ``(S, P)``."""
    from aimod.eval.text import token_agreement
    from aimod.text.generation import generate_grid

    out = torch.zeros(len(sigmas), len(prompts), dtype=torch.float64)
    mods = [Modulation(sigma=s) for s in sigmas]
    for key in keys:
        grid = generate_grid(
            model,
            tokenizer,
            prompts,
            mods,
            noise=FieldNoise.for_text(key),
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
        )
        for s, ids in enumerate(grid.token_ids):
            for p, tokens in enumerate(ids):
                out[s, p] += token_agreement([clean[p]], [tokens])
        if progress is not None:
            progress(1)
    return out / len(keys)


def _solve(sigmas: Tensor, curve: Tensor, target: float) -> float:
    """σ where a non-increasing curve (over increasing σ > 0) crosses ``target``; linear in log σ.

    Outside the measured range the nearest end is returned (the caller extends the grid first, so this
    happens only in bootstrap draws); never 0, which would be the clean model.
    """
    curve = torch.cummin(curve, 0).values
    if target >= float(curve[0]):
        return float(sigmas[0])
    if target <= float(curve[-1]):
        return float(sigmas[-1])
    hi = int(torch.nonzero(curve <= target)[0])
    lo = hi - 1
    a, b = float(curve[lo]), float(curve[hi])
    w = 0.0 if a == b else (a - target) / (a - b)
    return math.exp(math.log(float(sigmas[lo])) * (1 - w) + math.log(float(sigmas[hi])) * w)


def _at(sigmas: Tensor, curve: Tensor, sigma: float) -> float:
    """The curve's value at ``sigma`` (linear in log σ; 1 at σ = 0)."""
    if sigma <= 0:
        return 1.0
    x = torch.log(sigmas)
    t = math.log(sigma)
    if t <= float(x[0]):
        return float(curve[0])
    if t >= float(x[-1]):
        return float(curve[-1])
    hi = int(torch.nonzero(x >= t)[0])
    lo = hi - 1
    w = (t - float(x[lo])) / (float(x[hi]) - float(x[lo]))
    return float(curve[lo]) * (1 - w) + float(curve[hi]) * w


def calibrate_text(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    targets: Mapping[str, float],
    *,
    keys: int = 2,
    max_new_tokens: int = 24,
    batch_size: int = 16,
    grid: int = 10,
    rounds: int = 2,
    bootstrap: int = 200,
    progress: Callable[[int], None] | None = None,
) -> tuple[tuple[Tier, ...], dict[str, Any]]:
    """Tiers for a causal LM from unlabelled prompts (see the module docstring for the method).

    Args:
        model: A Hugging Face causal LM.
        tokenizer: Its tokenizer (its chat template is applied, as :func:`aimod.text.generate` does).
        prompts: Calibration prompts, like the ones the tiers will serve.
        targets: Tier name -> target token agreement with the clean completion.
        keys: Noise keys averaged per measurement.
        max_new_tokens: Tokens per completion; agreement is over the clean completion's tokens.
        batch_size: Prompts per ``generate`` call.
        grid: σ values in the first round, shared by all tiers.
        rounds: 1 (grid only) or 2 (grid, then σ x 0.85 and x 1.15 around each solution).
        bootstrap: Resamples of the prompts for the intervals.
        progress: Called with 1 after each generation grid.

    Returns:
        The tiers and the settings to record (keys, tokens, first-step σ₀ per tier, grid sizes).
    """
    from aimod import theory
    from aimod.text.generation import format_prompts, generate_grid
    from aimod.text.scoring import next_token_logits

    check_targets(targets, int(model.config.vocab_size))
    if grid < 2 or keys < 1 or bootstrap < 10:
        raise InvalidArgumentError("grid, keys, bootstrap", (grid, keys, bootstrap), "at least 2, 1 and 10")
    key_names = [f"aimod-calibration-key-{k}" for k in range(keys)]
    clean = generate_grid(
        model, tokenizer, prompts, [Modulation()], noise=SeededNoise(0), max_new_tokens=max_new_tokens,
        batch_size=batch_size,
    ).token_ids[0]  # fmt: skip
    texts, special = format_prompts(tokenizer, prompts)
    first = next_token_logits(model, tokenizer, texts, batch_size=batch_size, add_special_tokens=not special)
    starts = {name: 0.0 if t >= 1 else float(theory.sigma_for(first, t)) for name, t in targets.items()}

    measured: dict[float, Tensor] = {}  # sigma -> (P,) agreement per prompt

    def measure(sigmas: list[float]) -> None:
        new = sorted({float(f"{s:.6g}") for s in sigmas if s > 0} - set(measured))
        if new:
            table = measure_token_agreement(
                model, tokenizer, prompts, new, keys=key_names, clean=clean, max_new_tokens=max_new_tokens,
                batch_size=batch_size, progress=progress,
            )  # fmt: skip
            measured.update({s: table[i] for i, s in enumerate(new)})

    def fit(weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
        sigmas = torch.tensor(sorted(measured), dtype=torch.float64)
        table = torch.stack([measured[float(s)] for s in sigmas.tolist()])
        curve = table.mean(1) if weights is None else (table * weights).sum(1) / weights.sum()
        return sigmas, curve

    positive = [s0 for s0 in starts.values() if s0 > 0]
    if positive:  # one geometric grid for all tiers, from 0.03 x the smallest start to the largest start
        low, high = 0.03 * min(positive), max(positive)
        measure([low * (high / low) ** (i / (grid - 1)) for i in range(grid)])
        wanted = [t for t in targets.values() if t < 1]
        for _ in range(_EXTENSIONS):  # the grid must bracket every target: extend it where it does not
            sigmas, curve = fit()
            curve = torch.cummin(curve, 0).values
            if max(wanted) >= float(curve[0]):
                measure([float(sigmas[0]) / 4])
            elif min(wanted) <= float(curve[-1]):
                measure([float(sigmas[-1]) * 2])
            else:
                break
        else:
            sigmas, curve = fit()
            raise InvalidTargetError(
                "tiers",
                {k: v for k, v in targets.items() if v < 1},
                f"targets the measured token agreement can reach: between {float(curve.min()):.3f} (at sigma "
                f"{float(sigmas[-1]):.3g}) and {float(curve.max()):.3f} (at sigma {float(sigmas[0]):.3g})",
                "Use fewer new tokens or more prompts, or targets further from 1 and from chance.",
            )
    solution = {name: _solve(*fit(), t) if t < 1 else 0.0 for name, t in targets.items()}
    if rounds >= 2:
        measure([s * f for s in solution.values() if s > 0 for f in (0.85, 1.15)])
        solution = {name: _solve(*fit(), t) if t < 1 else 0.0 for name, t in targets.items()}

    generator = torch.Generator().manual_seed(0)
    draws = [
        torch.bincount(torch.randint(len(prompts), (len(prompts),), generator=generator), minlength=len(prompts))
        for _ in range(bootstrap)
    ]
    tiers = []
    for name, target in targets.items():
        sigma = solution[name]
        if sigma == 0:
            tiers.append(Tier(name, target, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0))
            continue
        boot_sigma, boot_agree = [], []
        for w in draws:
            s, c = fit(w.double())
            boot_sigma.append(_solve(s, torch.cummin(c, 0).values, target))
            boot_agree.append(_at(s, torch.cummin(c, 0).values, sigma))
        sig = torch.tensor(boot_sigma, dtype=torch.float64)
        agr = torch.tensor(boot_agree, dtype=torch.float64)
        s, c = fit()
        tiers.append(
            Tier(
                name=name,
                target=target,
                sigma=sigma,
                predicted=_at(s, torch.cummin(c, 0).values, sigma),
                low=float(agr.quantile(0.025)),
                high=float(agr.quantile(0.975)),
                sigma_low=float(sig.quantile(0.025)),
                sigma_high=float(sig.quantile(0.975)),
            )
        )
    settings = {
        "max_new_tokens": max_new_tokens,
        "keys": keys,
        "first_step_sigma": {k: round(v, 6) for k, v in starts.items()},
        "measured_sigmas": len(measured),
    }
    return tuple(tiers), settings
