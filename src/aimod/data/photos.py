"""Real photos for demonstrations: the images bundled with scikit-image (BSD-3), read offline."""

from __future__ import annotations

import torch
from torch import Tensor

from aimod.errors import MissingExtraError

__all__ = ["PHOTOS", "photos"]

PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "cat",
    "camera",
    "coins",
    "moon",
    "page",
    "text",
    "brick",
    "grass",
    "gravel",
    "clock",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "logo",
)
"""scikit-image's bundled photos used for demonstrations (all offline)."""


def photos(size: int = 288) -> tuple[Tensor, list[str]]:
    """The bundled photos as float RGB ``(N, 3, size, size)`` in [0, 1] (shorter side resized, centre crop)."""
    try:
        from skimage import data
    except ImportError as error:
        raise MissingExtraError("scikit-image", "vision") from error
    from aimod.models.preprocess import ImagePreprocess

    prep = ImagePreprocess(size=(size, size), mean=(0.0,) * 3, std=(1.0,) * 3, shorter_side=size)
    images = [prep(getattr(data, name)()) for name in PHOTOS]
    return torch.cat(images), list(PHOTOS)
