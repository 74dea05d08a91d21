"""Vision requests: decode the image, run the model in fixed-shape batches, modulate each row, answer.

Every forward pass runs exactly ``max_batch`` rows (the batch is padded with zeros), because deep-learning
kernels pick different code paths for different batch sizes and a row's clean logits then differ in the last
bits: measured on CPU, ResNet-20, SegFormer and EfficientNet-Lite0 all give different bits for a row alone
than in a batch of 16, while a row gives the same bits at any position of a fixed-shape batch. Padding buys
the guarantee that an answer never depends on the traffic around it, at the cost of computing empty rows when
traffic is light.

Segmentation noise is drawn per pixel at the model's input size (its label size), as the calibration assumes,
and the decided mask is then resized (nearest) to the uploaded image's size.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from aimod.catalog import VisionModel
from aimod.content_keys import exact_keys, fingerprint_keys
from aimod.errors import InvalidRequestError, RequestError, TooLargeError
from aimod.models.wrap import modulate_segmentation
from aimod.modulation import Modulation
from aimod.noise import NoiseSource
from aimod.redistribute import modulate_logits
from aimod.server.config import ServerSettings

__all__ = ["VisionRow", "VisionService", "decode_base64", "eight_bit"]


@dataclass(frozen=True)
class VisionRow:
    """One image to answer."""

    pixels: Tensor
    """uint8 ``(C, H, W)``."""
    modulation: Modulation
    """The tenant's σ and the request's focus (class ids)."""
    kind: Literal["classify", "segment"]
    top_k: int = 5


def decode_base64(text: str, param: str = "image") -> bytes:
    """Bytes of a base64 string, with or without a ``data:image/...;base64,`` prefix.

    Raises:
        InvalidRequestError: Naming ``param``, for invalid base64.

    Example:
        >>> decode_base64("data:image/png;base64,aGk=")
        b'hi'
    """
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(
            f"`{param}` is not valid base64 (standard alphabet, with padding).", param=param, code="bad_base64"
        ) from None


_HIGH_DEPTH = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0, "I": 65535.0, "F": 65535.0}
"""Pillow modes with more than 8 bits per pixel, and the value that stands for white."""


def eight_bit(image: Any, param: str = "image") -> Any:
    """The image with at most 8 bits per channel: high-depth grey (16-bit PNG or TIFF) scaled, never clipped.

    16-bit grey (``I;16`` and, for values in 0..65535, ``I``) is scaled by 255 / 65535 and rounded; 32-bit
    float grey (``F``) is taken as 0..1 when all values are, else as 0..65535. Other modes are returned as
    they are (Pillow's own conversions of them are exact).

    Raises:
        InvalidRequestError: For 32-bit images whose values fit neither range (negative, or over 65535).

    Example:
        >>> from PIL import Image
        >>> grey16 = Image.fromarray(np.array([[0, 257, 32896, 65535]], dtype=np.uint16))
        >>> np.asarray(eight_bit(grey16)).tolist()
        [[0, 1, 128, 255]]
    """
    from PIL import Image

    white = _HIGH_DEPTH.get(image.mode)
    if white is None:
        return image
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F" and values.size and float(values.min()) >= 0 and float(values.max()) <= 1:
        white = 1.0
    if values.size and (not np.isfinite(values).all() or values.min() < 0 or values.max() > white):
        raise InvalidRequestError(
            f"`{param}` is a {image.mode!r} image with values outside 0..{white:g}; send 8- or 16-bit pixels.",
            param=param,
            code="bad_image",
        )
    return Image.fromarray(np.rint(values * (255.0 / white)).astype(np.uint8))


class VisionService:
    """Image decoding and the batch function of a vision model.

    Args:
        loaded: The model (:func:`aimod.load`).
        noise: ``KeyedNoise(secret)``.
        settings: ``[server]``: keying, batch size and image limits.
    """

    def __init__(self, loaded: VisionModel, noise: NoiseSource, settings: ServerSettings) -> None:
        self.loaded = loaded
        self.noise = noise
        self.settings = settings
        self.channels = int(getattr(loaded.preprocess, "channels", 3))

    def decode(self, data: bytes, param: str = "image") -> Tensor:
        """uint8 ``(C, H, W)`` pixels of an encoded image (PNG, JPEG, WebP, BMP, ...).

        Raises:
            TooLargeError: Over the byte or pixel limits.
            InvalidRequestError: For bytes that are not an image.
        """
        from PIL import Image

        limit = self.settings.max_image_bytes
        if len(data) > limit:
            raise TooLargeError(
                f"`{param}` has {len(data)} bytes; at most {limit}.", param=param, code="image_too_large"
            )
        if not data:
            raise InvalidRequestError(f"`{param}` is empty.", param=param, code="bad_image")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                opened = Image.open(io.BytesIO(data))
                width, height = opened.size
                if width * height > self.settings.max_image_pixels:
                    raise TooLargeError(
                        f"`{param}` is {width} x {height} pixels; at most {self.settings.max_image_pixels} pixels.",
                        param=param,
                        code="image_too_large",
                    )
                image = eight_bit(opened, param).convert("L" if self.channels == 1 else "RGB")
        except RequestError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise TooLargeError(
                f"`{param}` declares more pixels than Pillow will decode; at most {self.settings.max_image_pixels} "
                "pixels.",
                param=param,
                code="image_too_large",
            ) from None
        except (OSError, ValueError, SyntaxError):
            raise InvalidRequestError(
                f"`{param}` is not an image PIL can read (PNG, JPEG, WebP, BMP, ...).",
                param=param,
                code="bad_image",
            ) from None
        array = np.asarray(image)
        array = array[:, :, None] if array.ndim == 2 else array
        return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()

    def run(self, rows: Sequence[VisionRow]) -> list[dict[str, Any] | BaseException]:
        """Answers for a batch of rows (the :class:`~aimod.server.batching.Batcher` function)."""
        results: list[dict[str, Any] | BaseException] = [RuntimeError("not computed")] * len(rows)
        inputs: dict[int, Tensor] = {}
        for i, row in enumerate(rows):
            try:  # one image that cannot be preprocessed fails alone, never its batch
                inputs[i] = self.loaded.preprocess(row.pixels[None])
            except Exception:
                results[i] = InvalidRequestError("The image could not be preprocessed for this model.", param="image")
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, x in inputs.items():
            groups.setdefault(tuple(x.shape[1:]), []).append(i)
        for members in groups.values():
            logits = self._logits(torch.cat([inputs[i] for i in members]))
            keys = self._keys([rows[i] for i in members], logits)
            if self.loaded.kind == "classification":  # one modulate_logits call for the whole group
                answers = self._classify([rows[i] for i in members], logits, keys)
            else:  # masks differ in size per image
                size = tuple(inputs[members[0]].shape[-2:])
                answers = [
                    self._segment(rows[i], logits[j : j + 1], keys[j : j + 1], size) for j, i in enumerate(members)
                ]
            for i, answer in zip(members, answers, strict=True):
                results[i] = answer
        return results

    @torch.no_grad()
    def _logits(self, x: Tensor) -> Tensor:
        n, size = x.shape[0], self.settings.max_batch
        padded = torch.cat([x, x.new_zeros(size - n, *x.shape[1:])]) if n < size else x
        logits: Tensor = self.loaded.logits(padded)
        return logits[:n]

    def _keys(self, rows: Sequence[VisionRow], clean: Tensor) -> Tensor:
        # with keying = "field" the utility noise is a function of the clean logits; the keys seed focus noise
        if self.settings.keying == "exact":
            return exact_keys([row.pixels for row in rows])
        return fingerprint_keys(clean, self.settings.fingerprint_step)

    def _classify(self, rows: Sequence[VisionRow], clean: Tensor, keys: Tensor) -> list[dict[str, Any]]:
        id2label = self.loaded.id2label
        mods = [row.modulation for row in rows]
        z = modulate_logits(clean, mods, dim=1, noise=self.noise, keys=keys, id2label=id2label)
        top = z.softmax(1).topk(min(max(row.top_k for row in rows), z.shape[1]), dim=1)
        values, indices = top.values.tolist(), top.indices.tolist()
        return [
            {
                "labels": [
                    self._label(i, p, row.modulation.sigma > 0)
                    for p, i in zip(values[r][: row.top_k], indices[r][: row.top_k], strict=True)
                ]
            }
            for r, row in enumerate(rows)
        ]

    def _label(self, class_id: int, probability: float, noisy: bool) -> dict[str, Any]:
        """One top-k entry; at a tier with utility noise, the probability as ``[server] release`` says."""
        entry: dict[str, Any] = {"class_id": class_id, "label": self.loaded.id2label[class_id]}
        release = self.settings.release if noisy else "probabilities"
        if release != "labels":
            entry["probability"] = round(probability, 2 if release == "rounded" else 6)
        return entry

    def _segment(self, row: VisionRow, clean: Tensor, key: Tensor, input_size: tuple[int, ...]) -> dict[str, Any]:
        id2label = self.loaded.id2label
        # Noise per pixel of the model's input size, then the mask resized (nearest) to the image: noise drawn at
        # the upload's size would let a client upload a huge image and vote each logit cell's pixels back clean.
        height, width = row.pixels.shape[1:]
        z = modulate_segmentation(clean, row.modulation, input_size, noise=self.noise, keys=key, id2label=id2label)
        decided = F.interpolate(z.argmax(1, keepdim=True).float(), size=(height, width), mode="nearest")[0, 0]
        mask = decided.to(torch.uint8 if len(id2label) <= 256 else torch.int32)
        counts = torch.bincount(mask.reshape(-1).to(torch.int64), minlength=len(id2label))
        return {
            "width": int(width),
            "height": int(height),
            "mask_png": base64.b64encode(_png(mask)).decode("ascii"),
            "shares": {id2label[c]: round(int(counts[c]) / (height * width), 6) for c in range(len(id2label))},
        }


def _png(mask: Tensor) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    image = Image.fromarray(mask.numpy())  # uint8 -> mode L, int32 -> mode I (over 256 classes)
    image.save(buffer, format="PNG")
    return buffer.getvalue()
