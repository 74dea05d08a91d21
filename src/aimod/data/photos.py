"""Real photos for demonstrations: the images bundled with scikit-image (BSD-3), read offline; views and crops."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from aimod.errors import MissingExtraError

__all__ = ["PHOTOS", "photo_crops", "photo_views", "photos"]

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


def photo_views(images: Tensor, crop: int) -> Tensor:
    """Five crops (corners and centre) and their mirror images of each image: ``(10 N, C, crop, crop)``.

    Example:
        >>> photo_views(torch.zeros(2, 3, 8, 8), 4).shape
        torch.Size([20, 3, 4, 4])
    """
    h, w = images.shape[-2:]
    corners = [(0, 0), (0, w - crop), (h - crop, 0), (h - crop, w - crop), ((h - crop) // 2, (w - crop) // 2)]
    crops = [images[..., t : t + crop, s : s + crop] for t, s in corners]
    stacked = torch.stack(crops + [c.flip(-1) for c in crops], dim=1)  # (N, 10, C, crop, crop)
    return stacked.flatten(0, 1)


def photo_crops(count: int, *, seed: int = 0, size: int = 256) -> Tensor:
    """``count`` seeded random crops of the bundled photos, two per photo in turn: ``(count, 3, size, size)``.

    Each crop keeps 45-100 % of the side and is mirrored at random; crops ``2k`` and ``2k + 1`` show photo
    ``k mod 18``, so even and odd crops cover the same photos.
    """
    images, _ = photos()
    side = images.shape[-1]
    generator = torch.Generator().manual_seed(seed)
    crops = []
    for i in range(count):
        image = images[(i // 2) % len(images)]
        crop = int(side * (0.45 + 0.55 * float(torch.rand((), generator=generator))))
        top = int(torch.randint(side - crop + 1, (), generator=generator))
        left = int(torch.randint(side - crop + 1, (), generator=generator))
        view = image[:, top : top + crop, left : left + crop]
        if bool(torch.rand((), generator=generator) < 0.5):
            view = view.flip(-1)
        crops.append(F.interpolate(view[None], size=(size, size), mode="bilinear", align_corners=False)[0])
    return torch.stack(crops)
