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
    from the one-step theory (:func:`aimod.calibrate.calibrate_text`). Inputs: see :mod:`aimod.calibrate.inputs`.

    With ``noise`` (a server's :class:`~aimod.FieldNoise`), vision tiers are refined to the agreement measured
    under that noise, and the file records its :attr:`~aimod.FieldNoise.noise_id` so that only a server with the
    same secret and field settings accepts it.

    Raises:
        InvalidTargetError: For malformed, out-of-range or non-monotone targets (before any model is loaded).
        UnknownModelError: For an unknown model name.
        InvalidArgumentError: For ``noise`` with a language model (text tiers are measured with keyed noise).
    """
    from aimod.calibrate.inputs import calibration_prompts, logit_rows
    from aimod.models.identity import weights_hash
    from aimod.text.models import is_causal_lm

    targets = parse_tiers(tiers)
    check_targets(targets, 2**31)  # range and order now; (1/K, 1] again once K is known
    say = progress or (lambda _: None)
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if is_causal_lm(model_name):
        if noise is not None:
            raise InvalidArgumentError(
                "noise",
                "a field noise for a language model",
                "no noise (text tiers are measured with keyed noise)",
                "Calibrate text tiers without --server-config.",
            )
        from aimod.calibrate.text import calibrate_text
        from aimod.text.models import load_causal_lm

        say(f"loading {model_name}")
        model, tokenizer = load_causal_lm(model_name)
        prompts, description = calibration_prompts("calibration", samples)
        say(f"measuring token agreement on {len(prompts)} prompts")
        result, settings = calibrate_text(model, tokenizer, prompts, targets, keys=keys, max_new_tokens=max_new_tokens)
        return Calibration(
            model=model_name,
            weights_sha256=weights_hash(model),
            num_classes=int(model.config.vocab_size),
            metric=f"token agreement of greedy completions ({max_new_tokens} new tokens) with the clean model's",
            method="sigma fitted to measured token agreement (bootstrap intervals), started from the one-step theory",
            inputs=description,
            samples=len(prompts),
            date=date,
            tiers=result,
            extra=settings,
        )
    from aimod.calibrate.vision import calibrate_logits
    from aimod.models import load

    say(f"loading {model_name}")
    loaded = load(model_name)
    check_targets(targets, loaded.num_classes)
    say("clean logits of the calibration inputs")
    rows = logit_rows(loaded, "calibration", samples)
    say("sigma per tier from the theory" + (", then measured under the server's field noise" if noise else ""))
    result_tiers = calibrate_logits(rows.logits, targets, groups=rows.groups, noise=noise)
    per = "per-pixel " if rows.groups is not None else ""
    method = "exact theory on the clean logits (aimod.theory.sigma_for); 95 % t-interval over inputs"
    if noise is not None:
        method = (
            "exact theory on the clean logits, then sigma refined to the agreement measured under the server's "
            "field noise (aimod.calibrate.measured_sigma); 95 % t-interval over inputs"
        )
    return Calibration(
        model=loaded.name,
        weights_sha256=weights_hash(loaded.model),
        num_classes=loaded.num_classes,
        metric=f"{per}agreement of the modulated decisions with the clean model's",
        method=method,
        inputs=rows.description,
        samples=rows.inputs,
        date=date,
        tiers=result_tiers,
        extra={"noise": noise.noise_id} if noise is not None else {},
    )
