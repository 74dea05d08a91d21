"""The inputs bundled with each model: an evaluation set, and disjoint calibration and held-out parts.

Calibration never uses labels; held-out inputs check a calibration on inputs it did not see.

* ``resnet-fashion``: evaluation = the Fashion-MNIST test split (10,000 labelled images); calibration = test
  images 0-4999 and held-out = 5000-9999, labels unused.
* ``segformer-scenes`` and ``hf:`` segmenters: evaluation = generated test-split scenes 0+ (labelled per pixel,
  200 by default); calibration = scenes 100000+ and held-out = scenes 0+ (100 each by default), labels unused.
* ``efficientnet-lite0`` and ``hf:`` classifiers: evaluation = the photos bundled with scikit-image, each as
  10 views (four corner crops, the centre crop and their mirror images), labelled by the clean model's own
  decisions; calibration and held-out = 2000 seeded random crops each (even and odd crops of the same 18
  photos, so held-out crops are new views, not new photos; ``groups`` names each crop's photo).
* language models: the questions of :mod:`aimod.data.facts`; evaluation = all 220 items (every category when
  capped), calibration = the even items, held-out = the odd items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from aimod.catalog.model import Model, Part, VisionModel
    from aimod.data.facts import FactItem

__all__ = ["Inputs", "bundled"]


@dataclass(frozen=True)
class Inputs:
    """Bundled inputs of a model: preprocessed images (vision) or fact items (language models)."""

    description: str
    """One line for reports: what the inputs are."""
    images: Tensor | None = None
    """Preprocessed model inputs ``(N, C, H, W)`` of a vision model."""
    labels: Tensor | None = None
    """Labels per image ``(N,)`` or per pixel ``(N, H, W)``; None where labels are the clean decisions."""
    groups: Tensor | None = None
    """``(N,)`` the independent unit of each input (a crop's photo); None when inputs are independent."""
    items: tuple[FactItem, ...] = ()
    """Questions with their answers (language models)."""

    @property
    def prompts(self) -> list[str]:
        """The questions of :attr:`items` (free answers, no stems)."""
        return [item.question for item in self.items]

    def __len__(self) -> int:
        return len(self.images) if self.images is not None else len(self.items)


def bundled(model: Model, part: Part, count: int | None = None) -> Inputs:
    """The ``part`` inputs of ``model`` (see the module docstring); ``count`` caps how many."""
    from aimod.catalog.model import expect_vision

    if model.kind == "causal-lm":
        return _facts(part, count)
    vision = expect_vision(model)
    if vision.name == "resnet-fashion":
        return _fashion(vision, part, count)
    if vision.kind == "segmentation":
        return _scenes(vision, part, count)
    return _photos(vision, part, count)


def _facts(part: Part, count: int | None) -> Inputs:
    from aimod.data.facts import fact_items, spread

    every = fact_items()
    if part == "evaluation":
        items = spread(every, count)
        return Inputs(f"{len(items)} questions of the aimod fact set", items=items)
    items = spread(every[0::2] if part == "calibration" else every[1::2], count)
    kind = "even" if part == "calibration" else "odd"
    return Inputs(f"{len(items)} questions ({kind} items) of the aimod fact set, answers unused", items=items)


def _fashion(model: VisionModel, part: Part, count: int | None) -> Inputs:
    from aimod.data.fashion_mnist import load_fashion_mnist

    images, labels = load_fashion_mnist("test")
    if part == "evaluation":
        n = min(count or len(images), len(images))
        return Inputs(f"Fashion-MNIST test split ({n} images)", model.preprocess(images[:n]), labels[:n])
    start = 0 if part == "calibration" else 5000
    n = min(count or 5000, 5000)
    images = model.preprocess(images[start : start + n])
    return Inputs(f"Fashion-MNIST test images {start}-{start + n - 1}, labels unused", images)


def _scenes(model: VisionModel, part: Part, count: int | None) -> Inputs:
    from aimod.data.scenes import make_scenes

    if part == "evaluation":
        n = count or 200
        images, labels = make_scenes(n, split="test")
        return Inputs(f"held-out generated scenes ({n} scenes of 128x128)", model.preprocess(images), labels)
    n = count or 100
    start = 100_000 if part == "calibration" else 0  # the evaluation scenes start at 0 too
    images, _ = make_scenes(n, split="test", start=start)
    description = f"generated scenes {start}-{start + n - 1} of the test split, per pixel, labels unused"
    return Inputs(description, model.preprocess(images))


def _photos(model: VisionModel, part: Part, count: int | None) -> Inputs:
    from aimod.data.photos import PHOTOS, photo_crops, photo_views, photos

    if part == "evaluation":
        views = photo_views(photos()[0], 256)
        n = min(count or len(views), len(views))
        description = f"scikit-image photos ({n} views of {len(PHOTOS)} photos; labels = clean decisions)"
        return Inputs(description, model.preprocess(views[:n]), groups=torch.arange(n) // 10)
    n = count or 2000
    crops = photo_crops(2 * n, seed=0)
    chosen = crops[0::2] if part == "calibration" else crops[1::2]
    kind = "even" if part == "calibration" else "odd"
    description = f"{n} random crops ({kind}) of the {len(PHOTOS)} bundled photos, labels unused"
    return Inputs(description, model.preprocess(chosen), groups=torch.arange(n) % len(PHOTOS))
