"""A generated, seeded semantic-segmentation data set: objects on textured backgrounds.

No labelled segmentation data set can be had offline, so aimod generates one. Each RGB scene (128x128 by
default; every length scales with the size) has a
textured background (two colours mixed by a random grating plus noise) and 2 to 6 objects, small or large,
that may occlude each other:

* four shapes: ``circle``, ``square``, ``triangle`` and ``stripe`` (a thin bar, the "streetlight" of this set);
* five real Fashion-MNIST objects, tinted: ``t-shirt``, ``trouser``, ``bag``, ``sneaker``, ``ankle boot``.

Labels are per pixel: 0 is ``background``, 1..9 the classes above. Scene ``i`` of a split depends only on the
split's seed and ``i``, so any slice is reproducible. The train and held-out splits use disjoint Fashion-MNIST
test images (0-7999 and 8000-9999) and different seeds.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor
from torch.nn import functional as F

from aimod.data.fashion_mnist import load_fashion_mnist
from aimod.errors import InvalidArgumentError

__all__ = ["SCENE_CLASSES", "make_scenes"]

SCENE_CLASSES = (
    "background",
    "circle",
    "square",
    "triangle",
    "stripe",
    "t-shirt",
    "trouser",
    "bag",
    "sneaker",
    "ankle boot",
)
"""Class names by label id."""

_FASHION_LABELS = {5: 0, 6: 1, 7: 8, 8: 7, 9: 9}  # scene class -> Fashion-MNIST label
_SPLITS = {"train": (1_000_003, range(0, 8000)), "test": (2_000_003, range(8000, 10000))}
DEFAULT_SIZE = 128


def make_scenes(
    num_scenes: int, *, split: Literal["train", "test"] = "test", start: int = 0, size: int = DEFAULT_SIZE
) -> tuple[Tensor, Tensor]:
    """Scenes ``start .. start + num_scenes - 1`` of a split.

    Returns:
        ``(images, labels)``: float32 ``(N, 3, size, size)`` in [0, 1] and int64 ``(N, size, size)`` class ids.

    Example:
        >>> images, labels = make_scenes(4, size=64)
        >>> images.shape, labels.shape, int(labels.max()) < len(SCENE_CLASSES)
        (torch.Size([4, 3, 64, 64]), torch.Size([4, 64, 64]), True)
        >>> torch.equal(make_scenes(2, start=2, size=64)[1], labels[2:])
        True
    """
    if split not in _SPLITS:
        raise InvalidArgumentError("split", split, "'train' or 'test'")
    if num_scenes < 1 or start < 0 or size < 32:
        raise InvalidArgumentError(
            "num_scenes, start, size", (num_scenes, start, size), "num_scenes >= 1, start >= 0 and size >= 32"
        )
    seed, item_range = _SPLITS[split]
    items, item_labels = load_fashion_mnist("test")
    pool = {
        cls: items[list(item_range)][item_labels[list(item_range)] == label].float() / 255
        for cls, label in _FASHION_LABELS.items()
    }
    images = torch.empty(num_scenes, 3, size, size)
    labels = torch.empty(num_scenes, size, size, dtype=torch.int64)
    for n in range(num_scenes):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + start + n)
        images[n], labels[n] = _scene(gen, pool, size)
    return images, labels


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen))


def _randint(gen: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high, (), generator=gen))


def _scene(gen: torch.Generator, pool: dict[int, Tensor], size: int) -> tuple[Tensor, Tensor]:
    k = size / 64  # every length below is given for 64x64 and scaled
    yy, xx = torch.meshgrid(
        torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij"
    )
    # textured background: two colours mixed by an oriented grating and pixel noise
    angle, freq = _uniform(gen, 0, math.pi), _uniform(gen, 0.05, 0.4) / k
    grating = 0.5 + 0.5 * torch.sin(freq * (xx * math.cos(angle) + yy * math.sin(angle)) + _uniform(gen, 0, 6.3))
    mix = (0.7 * grating + 0.3 * torch.rand(size, size, generator=gen)).clamp(0, 1)
    c1, c2 = torch.rand(3, 1, 1, generator=gen), torch.rand(3, 1, 1, generator=gen)
    image = c1 * (1 - mix) + c2 * mix
    label = torch.zeros(size, size, dtype=torch.int64)
    for _ in range(_randint(gen, 2, 7)):
        cls = _randint(gen, 1, len(SCENE_CLASSES))
        extent = _randint(gen, 8, 17) if float(torch.rand((), generator=gen)) < 0.5 else _randint(gen, 20, 41)
        extent = round(extent * k)
        cy, cx = _uniform(gen, 4 * k, size - 4 * k), _uniform(gen, 4 * k, size - 4 * k)
        colour = torch.rand(3, 1, 1, generator=gen)
        if cls >= 5:
            items = pool[cls]
            item = items[_randint(gen, 0, len(items))]
            side = max(extent, round(14 * k))
            patch = F.interpolate(item[None, None], size=(side, side), mode="bilinear", align_corners=False)[0, 0]
            top, left = round(cy - side / 2), round(cx - side / 2)
            canvas = torch.zeros(size + 2 * side, size + 2 * side)
            canvas[top + side : top + 2 * side, left + side : left + 2 * side] = patch
            alpha = canvas[side : side + size, side : side + size]
            mask = alpha > 0.15
            shade = colour * (0.35 + 0.65 * alpha)
        else:
            mask = _shape(cls, gen, yy, xx, cy, cx, extent, k)
            shade = colour.expand(3, size, size)
        image = torch.where(mask, shade, image)
        label[mask] = cls
    noise = 0.03 * torch.randn(3, size, size, generator=gen)
    return (image + noise).clamp(0, 1), label


def _shape(
    cls: int, gen: torch.Generator, yy: Tensor, xx: Tensor, cy: float, cx: float, extent: int, k: float
) -> Tensor:
    half = extent / 2
    if cls == 1:  # circle
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= half**2
    if cls == 2:  # square, rotated
        angle = _uniform(gen, 0, math.pi / 2)
        u = (xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)
        v = -(xx - cx) * math.sin(angle) + (yy - cy) * math.cos(angle)
        return (u.abs() <= half * 0.85) & (v.abs() <= half * 0.85)
    if cls == 3:  # triangle, pointing up
        top, bottom = cy - half, cy + half
        width = (yy - top) / (2 * half) * half
        return (yy >= top) & (yy <= bottom) & ((xx - cx).abs() <= width)
    # stripe: a thin bar of any orientation
    angle = _uniform(gen, 0, math.pi)
    u = (xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)
    v = -(xx - cx) * math.sin(angle) + (yy - cy) * math.cos(angle)
    return (u.abs() <= max(half, 10 * k)) & (v.abs() <= 1.5 * k)
