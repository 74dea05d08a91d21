"""Image preprocessing shared by the embedded and Hugging Face vision models.

:class:`ImagePreprocess` (the embedded models) turns what users have (a float tensor batch in [0, 1], a uint8 tensor,
or a list of HxWxC uint8 arrays / PIL images) into the model's input: resized (shorter side, then centre
crop, or straight to a fixed size), scaled to [0, 1] and normalised per channel. :class:`ProcessorPreprocess`
(``hf:`` checkpoints) hands the same inputs, as 8-bit images, to the checkpoint's own transformers image
processor, so its resize filter, crop, rescale factor and normalisation apply as its authors set them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from aimod.errors import InvalidArgumentError

__all__ = ["ImagePreprocess", "ProcessorPreprocess", "to_float_batch"]


def to_float_batch(images: Any, channels: int) -> Tensor:
    """A float32 ``(N, channels, H, W)`` batch in [0, 1] from a tensor, an array or a list of images.

    Tensors follow torch's layout, ``(N, C, H, W)`` or ``(N, H, W)``; numpy arrays and PIL images follow the
    image layout, one ``H x W x C`` (or ``H x W``) image, a stack ``(N, H, W, C)``, or a list of equal-sized
    images. uint8 pixels are scaled by 1/255; float pixels must already be in [0, 1]. RGBA drops alpha.

    Example:
        >>> to_float_batch(np.zeros((4, 5, 3), np.uint8), 3).shape
        torch.Size([1, 3, 4, 5])
    """
    if isinstance(images, Tensor):  # torch convention: (N, C, H, W) or (N, H, W)
        x = images[:, None] if images.ndim == 3 else images
    else:  # numpy / PIL convention: H x W x C (or H x W) images
        if isinstance(images, np.ndarray):
            arrays = [images] if images.ndim in (2, 3) else list(images)
        elif isinstance(images, Sequence) and len(images) > 0:
            arrays = [np.asarray(im.convert("RGB") if hasattr(im, "convert") else im) for im in images]
        else:
            raise InvalidArgumentError(
                "images", type(images).__name__, "a tensor, a numpy array or a non-empty list of images"
            )
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise InvalidArgumentError(
                "images",
                f"{len(arrays)} images of shapes {sorted(shapes)}",
                "images of one size",
                "Resize them first, or pass them one at a time.",
            )
        x = torch.from_numpy(np.stack(arrays))
        x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[1] not in (1, 3, 4):
        raise InvalidArgumentError(
            "images",
            f"an array of shape {tuple(images.shape) if hasattr(images, 'shape') else '?'}",
            "tensors (N, C, H, W) or (N, H, W), or H x W x C images, with 1, 3 or 4 channels",
        )
    if x.shape[1] == 4:
        x = x[:, :3]
    if x.dtype == torch.uint8:
        x = x.float() / 255
    elif x.is_floating_point():
        x = x.float()
    else:
        raise InvalidArgumentError("images", f"an array of dtype {x.dtype}", "uint8 (0-255) or float (0-1) pixels")
    if x.shape[1] != channels:
        if x.shape[1] == 1 and channels == 3:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] == 3 and channels == 1:
            x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return x.contiguous()


@dataclass(frozen=True)
class ImagePreprocess:
    """Resize, crop and normalise a batch of images for a vision model.

    Example:
        >>> prep = ImagePreprocess(size=(8, 8), mean=(0.5,), std=(0.5,), channels=1)
        >>> prep(torch.ones(2, 1, 16, 16)).shape
        torch.Size([2, 1, 8, 8])
    """

    size: tuple[int, int] | None
    """Output (height, width); None keeps the input size."""
    mean: tuple[float, ...]
    """Per-channel mean subtracted after scaling to [0, 1]."""
    std: tuple[float, ...]
    """Per-channel std divided by."""
    channels: int = 3
    """Input channels the model expects."""
    shorter_side: int | None = None
    """If set, first resize so the shorter side has this length, then centre-crop to ``size``."""

    def __call__(self, images: Any) -> Tensor:
        """Preprocessed float32 batch ``(N, channels, H, W)``; a list of images may mix sizes."""
        if isinstance(images, (list, tuple)) and len(images) > 1 and self.size is not None:
            return torch.cat([self._batch(to_float_batch([image], self.channels)) for image in images])
        return self._batch(to_float_batch(images, self.channels))

    def _batch(self, x: Tensor) -> Tensor:
        if self.shorter_side is not None:
            h, w = x.shape[-2:]
            scale = self.shorter_side / min(h, w)
            x = F.interpolate(
                x, size=(round(h * scale), round(w * scale)), mode="bilinear", antialias=True, align_corners=False
            )
        if self.size is not None and tuple(x.shape[-2:]) != self.size:
            if self.shorter_side is not None:
                top = (x.shape[-2] - self.size[0]) // 2
                left = (x.shape[-1] - self.size[1]) // 2
                x = x[..., top : top + self.size[0], left : left + self.size[1]]
            else:
                x = F.interpolate(x, size=self.size, mode="bilinear", antialias=True, align_corners=False)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)
        return ((x - mean) / std).contiguous()


@dataclass(frozen=True)
class ProcessorPreprocess:
    """A transformers image processor (``AutoImageProcessor``) behind aimod's image inputs.

    Accepts what :func:`to_float_batch` accepts (a list may mix sizes) and gives the processor 8-bit
    ``H x W x C`` images, the form its PIL path works in: float pixels in [0, 1] are rounded to 1/255 steps.
    """

    processor: Any
    """The checkpoint's image processor."""
    channels: int = 3
    """Input channels the model expects."""

    def __call__(self, images: Any) -> Tensor:
        """The processor's ``pixel_values`` as a float32 batch."""
        if isinstance(images, (list, tuple)):
            batches = [to_float_batch([image], self.channels) for image in images]
        else:
            batches = [to_float_batch(images, self.channels)]
        pixels = [
            np.ascontiguousarray(image)
            for batch in batches
            for image in (batch * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        ]
        out = self.processor(images=pixels, return_tensors="pt", input_data_format="channels_last")
        pixel_values: Tensor = out["pixel_values"]
        return pixel_values.float().contiguous()
