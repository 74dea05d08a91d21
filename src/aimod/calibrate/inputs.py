"""Unlabelled calibration inputs for the embedded models, and held-out inputs to check calibration on.

Calibration never uses labels. Each model has two disjoint parts:

* ``resnet-fashion``: Fashion-MNIST test images 0-4999 (calibration) and 5000-9999 (held out);
* ``segformer-scenes``: generated test-split scenes 100000+ (calibration) and 0+ (held out), per-pixel rows;
* ``efficientnet-lite0`` and ``hf:`` classifiers: 2000 seeded random crops (45-100 % of the side, mirrored at
  random) of the bundled photos; even crops calibrate, odd crops are held out. Only 18 photos exist offline,
  so the held-out crops are new views of the same photos, not new photos; intervals count photos, not crops;
* language models: the questions of :mod:`aimod.data.facts`, even items calibrate, odd items are held out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor
from torch.nn import functional as F

from aimod.errors import InvalidArgumentError

if TYPE_CHECKING:
    from aimod.data.facts import FactItem

__all__ = ["LogitRows", "Part", "calibration_items", "calibration_prompts", "logit_rows", "photo_crops"]

Part = Literal["calibration", "held-out"]


@dataclass(frozen=True)
class LogitRows:
    """Clean logits of a model on unlabelled inputs, one row per decision."""

    logits: Tensor
    """``(N, K)`` float32; pixels are rows for a segmenter."""
    groups: Tensor | None
    """``(N,)`` the independent unit of each row (a segmenter's image, a crop's photo); None when rows are."""
    inputs: int
    """Inputs (images) behind the rows."""
    description: str


def _check_part(part: str) -> None:
    if part not in ("calibration", "held-out"):
        raise InvalidArgumentError("part", part, "'calibration' or 'held-out'")


def photo_crops(count: int, *, seed: int = 0, size: int = 256) -> Tensor:
    """``count`` seeded random crops of the bundled photos, two per photo in turn: ``(count, 3, size, size)``."""
    from aimod.data.photos import photos

    images, _ = photos()
    side = images.shape[-1]
    generator = torch.Generator().manual_seed(seed)
    crops = []
    for i in range(count):
        image = images[(i // 2) % len(images)]  # crops 2k and 2k + 1 share a photo: even/odd halves match
        crop = int(side * (0.45 + 0.55 * float(torch.rand((), generator=generator))))
        top = int(torch.randint(side - crop + 1, (), generator=generator))
        left = int(torch.randint(side - crop + 1, (), generator=generator))
        view = image[:, top : top + crop, left : left + crop]
        if bool(torch.rand((), generator=generator) < 0.5):
            view = view.flip(-1)
        crops.append(F.interpolate(view[None], size=(size, size), mode="bilinear", align_corners=False)[0])
    return torch.stack(crops)


def logit_rows(loaded: object, part: Part, count: int | None = None) -> LogitRows:
    """Clean logit rows of an embedded (or ``hf:``) vision model on its calibration or held-out inputs."""
    from aimod.eval.sweep import cache_logits
    from aimod.models.registry import LoadedModel

    _check_part(part)
    if not isinstance(loaded, LoadedModel):
        raise InvalidArgumentError("loaded", type(loaded).__name__, "a LoadedModel from aimod.models.load")
    units: Tensor | None = None
    if loaded.name == "resnet-fashion":
        from aimod.data.fashion_mnist import load_fashion_mnist

        images, _ = load_fashion_mnist("test")  # labels are not used
        start = 0 if part == "calibration" else 5000
        n = min(count or 5000, 5000)
        inputs = loaded.preprocess(images[start : start + n])
        description = f"Fashion-MNIST test images {start}-{start + n - 1}, labels unused"
    elif loaded.task == "segmentation":
        from aimod.data.scenes import make_scenes

        n = count or 100
        start = 100_000 if part == "calibration" else 0  # the evaluation scenes start at 0
        images, _ = make_scenes(n, split="test", start=start)
        inputs = loaded.preprocess(images)
        description = f"generated scenes {start}-{start + n - 1} of the test split, per pixel, labels unused"
    else:
        from aimod.data.photos import PHOTOS

        n = count or 2000
        crops = photo_crops(2 * n, seed=0)
        chosen = crops[0::2] if part == "calibration" else crops[1::2]
        inputs = loaded.preprocess(chosen)
        kind = "even" if part == "calibration" else "odd"
        description = f"{n} random crops ({kind}) of the {len(PHOTOS)} bundled photos, labels unused"
        units = torch.arange(n) % len(PHOTOS)  # crops 2k and 2k + 1 show photo k mod 18
    cached = cache_logits(loaded.logits, inputs, None, loaded.id2label)
    logits = cached.logits
    if logits.ndim == 4:  # (N, K, H, W) -> pixel rows, grouped by image
        groups = torch.arange(len(logits)).repeat_interleave(logits.shape[-2] * logits.shape[-1])
        rows = logits.movedim(1, -1).reshape(-1, logits.shape[1])
        return LogitRows(rows, groups, len(logits), description)
    return LogitRows(logits, units, len(logits), description)


def calibration_items(part: Part, count: int | None = None) -> tuple[FactItem, ...]:
    """The fact-set items behind :func:`calibration_prompts`: even (calibration) or odd (held-out) items."""
    from aimod.data.facts import fact_items, spread

    _check_part(part)
    return spread(fact_items()[0::2] if part == "calibration" else fact_items()[1::2], count)


def calibration_prompts(part: Part, count: int | None = None) -> tuple[list[str], str]:
    """Questions of the fact set (free answers, no stems) for language-model calibration; and a description."""
    items = calibration_items(part, count)
    kind = "even" if part == "calibration" else "odd"
    return [i.question for i in items], f"{len(items)} questions ({kind} items) of the aimod fact set, answers unused"
