"""Attacks on a tier: ask the same (or a nearly the same) input many times, keep the majority or a soft vote.

Against fresh noise per query the majority converges to the clean decision, so a client undoes a tier by
paying for more queries; against keyed noise every copy gets the same answer, and against noise that is a
smooth field of the clean logits near-duplicates do too. :data:`FAMILIES` are the kinds of copies a tenant can
make of an image (:func:`image_variants` encodes them as a client would send them). These helpers are shared
by ``aimod demo``, ``benchmarks/bench_repeated_query.py`` and ``benchmarks/bench_tier_integrity.py``.

Example:
    >>> import torch
    >>> majority_vote(torch.tensor([[1, 1, 0], [2, 0, 0]]), num_classes=3)
    tensor([1, 0])
    >>> images = torch.zeros(2, 4, 4, dtype=torch.uint8)
    >>> changed = perturb_pixels(images, "gauss", 2.0, torch.Generator().manual_seed(0))
    >>> changed.dtype, changed.shape, bool((changed != images).any())
    (torch.uint8, torch.Size([2, 4, 4]), True)
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from aimod.errors import InvalidArgumentError

__all__ = ["FAMILIES", "encode_image", "image_variants", "majority_vote", "perturb_pixels", "soft_vote"]


def majority_vote(decisions: Tensor, num_classes: int) -> Tensor:
    """``(inputs, queries)`` class ids -> ``(inputs,)`` the most frequent one (the smallest id on ties)."""
    if decisions.ndim != 2:
        raise InvalidArgumentError("decisions", f"a tensor of shape {tuple(decisions.shape)}", "(inputs, queries)")
    if decisions.numel() and (int(decisions.min()) < 0 or int(decisions.max()) >= num_classes):
        raise InvalidArgumentError("decisions", "class ids out of range", f"ids in 0..{num_classes - 1}")
    counts = torch.zeros(decisions.shape[0], num_classes, dtype=torch.int64)
    counts.scatter_add_(1, decisions.to(torch.int64), torch.ones_like(decisions, dtype=torch.int64))
    return counts.argmax(1)


def soft_vote(scores: Tensor) -> Tensor:
    """``(inputs, queries, classes)`` returned probabilities (or any scores) -> ``(inputs,)`` argmax of their sum.

    Example:
        >>> soft_vote(torch.tensor([[[0.6, 0.4], [0.1, 0.9]]]))
        tensor([1])
    """
    if scores.ndim != 3:
        raise InvalidArgumentError("scores", f"a tensor of shape {tuple(scores.shape)}", "(inputs, queries, classes)")
    return scores.sum(1).argmax(1)


def perturb_pixels(
    images: Tensor, kind: Literal["pixels", "gauss"], size: float, generator: torch.Generator, *, count: int = 4
) -> Tensor:
    """A near-duplicate of each uint8 image, rounded and clipped to 0..255.

    ``"pixels"`` moves ``count`` random pixels by ``±size``; ``"gauss"`` adds Gaussian noise of std ``size`` to
    every pixel.
    """
    if images.dtype != torch.uint8:
        raise InvalidArgumentError("images", f"dtype {images.dtype}", "uint8 pixels")
    x = images.to(torch.int16)
    if kind == "pixels":
        flat = x.reshape(x.shape[0], -1).clone()
        where = torch.randint(0, flat.shape[1], (flat.shape[0], count), generator=generator)
        sign = torch.randint(0, 2, (flat.shape[0], count), generator=generator) * 2 - 1
        flat.scatter_add_(1, where, (sign * round(size)).to(torch.int16))
        x = flat.view_as(x)
    elif kind == "gauss":
        x = x + (torch.randn(x.shape, generator=generator) * size).round().to(torch.int16)
    else:
        raise InvalidArgumentError("kind", kind, "'pixels' or 'gauss'")
    return x.clamp(0, 255).to(torch.uint8)


def encode_image(array: np.ndarray, fmt: str = "PNG", **options: object) -> bytes:
    """A uint8 image ``(H, W)`` or ``(H, W, 3)`` encoded by Pillow as ``fmt`` (PNG, JPEG, BMP, TIFF, ...).

    Example:
        >>> encode_image(np.zeros((2, 2), np.uint8))[1:4], encode_image(np.zeros((2, 2), np.uint8), "BMP")[:2]
        (b'PNG', b'BM')
    """
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _reencoded(image: np.ndarray, generator: torch.Generator) -> bytes:
    from PIL import PngImagePlugin

    choice = int(torch.randint(0, 4, (1,), generator=generator))
    if choice == 0:
        return encode_image(image, compress_level=int(torch.randint(0, 10, (1,), generator=generator)))
    if choice == 1:
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", f"copy {int(torch.randint(0, 1 << 30, (1,), generator=generator))}")
        return encode_image(image, pnginfo=info)
    return encode_image(image, "BMP" if choice == 2 else "TIFF")


def _geometry(image: np.ndarray, generator: torch.Generator) -> bytes:
    """A 1-pixel shift (edge pixels repeated), a 1-pixel crop of each border, or a 1-pixel pad."""
    choice = int(torch.randint(0, 3, (1,), generator=generator))
    if choice == 0:
        dy, dx = (int(v) for v in torch.randint(-1, 2, (2,), generator=generator))
        padded = np.pad(image, ((1, 1), (1, 1)) + ((0, 0),) * (image.ndim - 2), mode="edge")
        height, width = image.shape[:2]
        return encode_image(np.ascontiguousarray(padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]))
    if choice == 1:
        return encode_image(np.ascontiguousarray(image[1:-1, 1:-1]))
    return encode_image(np.pad(image, ((1, 1), (1, 1)) + ((0, 0),) * (image.ndim - 2), mode="edge"))


def _noisy(std: float) -> Callable[[np.ndarray, torch.Generator], bytes]:
    def make(image: np.ndarray, generator: torch.Generator) -> bytes:
        noise = torch.randn(image.shape, generator=generator).numpy() * std
        return encode_image(np.clip(np.round(image + noise), 0, 255).astype(np.uint8))

    return make


def _pixels(image: np.ndarray, generator: torch.Generator) -> bytes:
    count = 1 if bool(torch.randint(0, 2, (1,), generator=generator)) else 4
    return encode_image(perturb_pixels(torch.from_numpy(image)[None], "pixels", 1, generator, count=count)[0].numpy())


def _jpeg(image: np.ndarray, generator: torch.Generator) -> bytes:
    return encode_image(image, "JPEG", quality=int(torch.randint(50, 101, (1,), generator=generator)))


FAMILIES: dict[str, Callable[[np.ndarray, torch.Generator], bytes]] = {
    "the same image": lambda image, generator: encode_image(image),
    "1 or 4 pixels changed by one grey level": _pixels,
    "the same pixels re-encoded (PNG, BMP, TIFF, metadata)": _reencoded,
    "Gaussian pixel noise, std 2": _noisy(2.0),
    "Gaussian pixel noise, std 8": _noisy(8.0),
    "1-pixel shifts, crops, pads": _geometry,
    "JPEG re-encoding at quality 50 to 100": _jpeg,
}
"""The near-duplicate families a tenant can send: name -> (uint8 image ``(H, W)`` or ``(H, W, 3)``, generator)
-> encoded bytes."""


def image_variants(image: np.ndarray, family: str, count: int, generator: torch.Generator) -> list[bytes]:
    r"""``count`` encoded copies of a uint8 image, made the way ``family`` says (see :data:`FAMILIES`).

    Example:
        >>> import numpy as np
        >>> copies = image_variants(np.zeros((8, 8), np.uint8), "the same image", 3, torch.Generator())
        >>> len(copies), copies[0] == copies[2], copies[0][1:4]
        (3, True, b'PNG')
    """
    if family not in FAMILIES:
        raise InvalidArgumentError("family", family, f"one of {sorted(FAMILIES)}")
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise InvalidArgumentError(
            "image", f"an array of dtype {image.dtype} and shape {image.shape}", "uint8 (H, W[, 3])"
        )
    return [FAMILIES[family](image, generator) for _ in range(count)]
