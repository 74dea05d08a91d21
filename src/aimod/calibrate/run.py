"""``calibrate``: an embedded model's (or ``hf:`` model's) tiers, from its default unlabelled inputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone

from aimod.calibrate.tiers import Calibration, check_targets, parse_tiers
from aimod.errors import InvalidArgumentError
from aimod.field import FieldNoise

__all__ = ["calibrate"]


def calibrate(
    model_name: str,
    tiers: Sequence[str] | Mapping[str, float],
    *,
    samples: int | None = None,
    keys: int = 2,
    max_new_tokens: int = 24,
    progress: Callable[[str], None] | None = None,
    noise: FieldNoise | None = None,
) -> Calibration:
    """Calibrates ``tiers`` (``["free=0.5", ...]`` or a mapping) for a model, without labels.

    Vision models: σ per tier from the exact theory on the clean logits of the calibration inputs
    (:func:`aimod.calibrate.calibrate_logits`). Language models: σ fitted to measured token agreement, started
    from the one-step theory (:func:`aimod.calibrate.calibrate_text`). Inputs: the model's bundled calibration
    inputs (:mod:`aimod.catalog.inputs`).

    With ``noise`` (a server's :class:`~aimod.FieldNoise`), vision tiers are refined to the agreement measured
    under that noise, and the file records its :attr:`~aimod.FieldNoise.noise_id` so that only a server with the
    same secret and field settings accepts it.

    Raises:
        InvalidTargetError: For malformed, out-of-range or non-monotone targets (before any model is loaded).
        UnknownModelError: For an unknown model name.
        InvalidArgumentError: For ``noise`` with a language model (text tiers are measured with keyed noise).
    """
    from aimod.catalog import TextModel, kind, load

    targets = parse_tiers(tiers)
    check_targets(targets, 2**31)  # range and order now; (1/K, 1] again once K is known
    if noise is not None and kind(model_name) == "causal-lm":
        raise InvalidArgumentError(
            "noise",
            "a field noise for a language model",
            "no noise (text tiers are measured with keyed noise)",
            "Calibrate text tiers without --server-config.",
        )
    say = progress or (lambda _: None)
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    say(f"loading {model_name}")
    model = load(model_name)
    if isinstance(model, TextModel):
        from aimod.calibrate.text import calibrate_text

        inputs = model.inputs("calibration", samples)
        say(f"measuring token agreement on {len(inputs)} prompts")
        result, settings = calibrate_text(
            model.model, model.tokenizer, inputs.prompts, targets, keys=keys, max_new_tokens=max_new_tokens
        )
        return Calibration(
            model=model.name,
            weights_sha256=model.weights_hash,
            num_classes=model.num_classes,
            metric=f"token agreement of greedy completions ({max_new_tokens} new tokens) with the clean model's",
            method="sigma fitted to measured token agreement (bootstrap intervals), started from the one-step theory",
            inputs=inputs.description,
            samples=len(inputs),
            date=date,
            tiers=result,
            extra=settings,
        )
    from aimod.calibrate.inputs import logit_rows
    from aimod.calibrate.vision import calibrate_logits

    check_targets(targets, model.num_classes)
    say("clean logits of the calibration inputs")
    rows = logit_rows(model, "calibration", samples)
    say("sigma per tier from the theory" + (", then measured under the server's field noise" if noise else ""))
    result_tiers = calibrate_logits(rows.logits, targets, groups=rows.groups, noise=noise)
    per = "per-pixel " if rows.groups is not None and model.kind == "segmentation" else ""
    method = "exact theory on the clean logits (aimod.theory.sigma_for); 95 % t-interval over inputs"
    if noise is not None:
        method = (
            "exact theory on the clean logits, then sigma refined to the agreement measured under the server's "
            "field noise (aimod.calibrate.measured_sigma); 95 % t-interval over inputs"
        )
    return Calibration(
        model=model.name,
        weights_sha256=model.weights_hash,
        num_classes=model.num_classes,
        metric=f"{per}agreement of the modulated decisions with the clean model's",
        method=method,
        inputs=rows.description,
        samples=rows.inputs,
        date=date,
        tiers=result_tiers,
        extra={"noise": noise.noise_id} if noise is not None else {},
    )
