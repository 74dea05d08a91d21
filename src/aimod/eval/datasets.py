"""The evaluation set of each embedded model, preprocessed and ready for :func:`aimod.eval.cache_logits`.

* ``resnet-fashion``: the Fashion-MNIST test split (10,000 images, labelled).
* ``segformer-scenes``: held-out generated scenes (labelled per pixel).
* ``efficientnet-lite0`` and ``hf:`` classifiers: the photos bundled with scikit-image (chelsea, coffee,
  astronaut, ...), each as 10 views (four corner crops, the centre crop and their mirror images). Photos
  have no labels, so the labels are the model's own clean decisions and "accuracy" is agreement with the
  clean model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from aimod.data.photos import PHOTOS, photos
from aimod.models.registry import LoadedModel

__all__ = ["EvalSet", "eval_set"]


@dataclass(frozen=True)
class EvalSet:
    """Preprocessed inputs and their labels (None when labels must come from the clean model)."""

    inputs: Tensor
    labels: Tensor | None
    description: str


def _views(images: Tensor, crop: int) -> Tensor:
    """Five crops (corners and centre) and their mirror images of each image: (10 N, 3, crop, crop)."""
    h, w = images.shape[-2:]
    corners = [(0, 0), (0, w - crop), (h - crop, 0), (h - crop, w - crop), ((h - crop) // 2, (w - crop) // 2)]
    crops = [images[..., t : t + crop, s : s + crop] for t, s in corners]
    stacked = torch.stack(crops + [c.flip(-1) for c in crops], dim=1)  # (N, 10, 3, crop, crop)
    return stacked.flatten(0, 1)


def eval_set(loaded: LoadedModel, num_samples: int | None = None) -> EvalSet:
    """The evaluation set of an embedded (or ``hf:``) model; ``num_samples`` caps its size."""
    if loaded.name == "resnet-fashion":
        from aimod.data.fashion_mnist import load_fashion_mnist

        images, labels = load_fashion_mnist("test")
        n = min(num_samples or len(images), len(images))
        return EvalSet(loaded.preprocess(images[:n]), labels[:n], f"Fashion-MNIST test split ({n} images)")
    if loaded.task == "segmentation":
        from aimod.data.scenes import make_scenes

        n = num_samples or 200
        images, labels = make_scenes(n, split="test")
        return EvalSet(loaded.preprocess(images), labels, f"held-out generated scenes ({n} scenes of 128x128)")
    images, _ = photos()
    views = _views(images, 256)
    n = min(num_samples or len(views), len(views))
    return EvalSet(
        loaded.preprocess(views[:n]),
        None,
        f"scikit-image photos ({n} views of {len(PHOTOS)} photos; labels = clean decisions)",
    )
