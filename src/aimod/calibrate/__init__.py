"""Calibration: owners set utility as a level ("70 % agreement with the clean model"), not as a raw σ.

* :func:`calibrate` - an embedded or ``hf:`` model's tiers from its default unlabelled inputs;
* :func:`calibrate_logits` - tiers from clean logits (exact theory; vision), optionally refined under a
  server's field noise (:func:`measured_sigma`);
* :func:`calibrate_text` - tiers for a language model (measured token agreement, theory start);
* :class:`Calibration`, :class:`Tier`, :func:`save_tiers`, :func:`load_tiers` - the tiers file (TOML);
* :func:`weights_hash` - the model identity recorded in it.
"""

from __future__ import annotations

from aimod.calibrate.run import calibrate
from aimod.calibrate.text import calibrate_text
from aimod.calibrate.tiers import (
    Calibration,
    Tier,
    check_model,
    check_targets,
    load_tiers,
    parse_tiers,
    save_tiers,
    validate,
)
from aimod.calibrate.vision import calibrate_logits, focus_effect, measured_sigma
from aimod.models.identity import weights_hash

__all__ = [
    "Calibration",
    "Tier",
    "calibrate",
    "calibrate_logits",
    "calibrate_text",
    "check_model",
    "check_targets",
    "focus_effect",
    "load_tiers",
    "measured_sigma",
    "parse_tiers",
    "save_tiers",
    "validate",
    "weights_hash",
]
