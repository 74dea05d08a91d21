"""What every demo section gets: the run's sizes, the report folder, the noise, progress and shared results."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aimod.field import FieldNoise
from aimod.noise import KeyedNoise

__all__ = ["FULL", "QUICK", "SECRET", "TARGETS", "Budget", "Context"]

SECRET = "aimod demo secret: public, for the demo only; a server reads its own from the environment"
"""The owner secret of the demo's keyed noise. It is published here, so it protects nothing: a real owner keeps
theirs out of code (see docs/server.md)."""

TARGETS = {"standard": 0.9, "basic": 0.7, "free": 0.5}
"""The demo's tiers: target agreement with the full model (the full tier is sigma 0)."""


@dataclass(frozen=True)
class Budget:
    """Sizes of one run: ``FULL`` (about 3.5 minutes on 2 cores) or ``QUICK`` (about a minute)."""

    photo_crops: int
    """Random crops of the bundled photos for efficientnet-lite0's calibration, and as many held out."""
    photos: int
    """Photos shown with their label at each tier."""
    fashion_images: int
    """Held-out Fashion-MNIST test images (from image 5000 on) for resnet-fashion's curve."""
    seeds: int
    """Noise seeds per measured point (mean and 95 % interval)."""
    scenes: int
    """Held-out generated scenes for segformer-scenes' focus curve."""
    text_calibration: int
    """Fact-set questions (even items) for smollm2-135m's calibration."""
    text_keys: int
    """Noise keys averaged per calibration measurement."""
    text_heldout: int
    """Fact-set questions (odd items) the text tiers are measured on."""
    text_multiple_choice: bool
    """Also score the held-out questions' multiple-choice form."""
    attack_inputs: int
    """Test images in the repeated-query attack."""
    attack_queries: int
    """Queries per image (odd, so a majority exists between two classes)."""


FULL = Budget(
    photo_crops=256,
    photos=12,
    fashion_images=5000,
    seeds=5,
    scenes=100,
    text_calibration=32,
    text_keys=2,
    text_heldout=40,
    text_multiple_choice=True,
    attack_inputs=200,
    attack_queries=101,
)
QUICK = Budget(
    photo_crops=48,
    photos=6,
    fashion_images=2000,
    seeds=3,
    scenes=30,
    text_calibration=16,
    text_keys=1,
    text_heldout=12,
    text_multiple_choice=False,
    attack_inputs=100,
    attack_queries=31,
)


@dataclass
class Context:
    """Shared by the sections of one run."""

    folder: Path
    """The report folder: sections save their figures here."""
    budget: Budget
    step: Callable[[str], None] = lambda _: None
    """Called as each step starts, with what it does (drives the progress display)."""
    noise: KeyedNoise = field(default_factory=lambda: KeyedNoise(SECRET))
    text_noise: FieldNoise = field(default_factory=lambda: FieldNoise.for_text(SECRET))
    """The language model's noise, as ``aimod serve`` draws it (a field of each step's clean logits)."""
    shared: dict[str, Any] = field(default_factory=dict)
    """Results later sections reuse (resnet-fashion's tiers for the attack)."""
