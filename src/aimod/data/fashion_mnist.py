"""The real Fashion-MNIST data set (Zalando, MIT licence), read offline.

The 10,000-image test split ships inside aimod (``aimod/data/fashion_mnist/``, 4.4 MB, with its licence).
The 60,000-image training split is only needed to retrain ``resnet-fashion``; it is read from the Debian
package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``) or from a folder given by the
``AIMOD_FASHION_MNIST`` environment variable. Files are the original gzipped IDX files.
"""

from __future__ import annotations

import gzip
import os
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from aimod.errors import InvalidArgumentError

__all__ = ["FASHION_MNIST_CLASSES", "load_fashion_mnist"]

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
"""Class names by label id, as published with the data set."""

_FILES = {"train": "train-{}-idx{}-ubyte.gz", "test": "t10k-{}-idx{}-ubyte.gz"}
_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


def _candidates(split: str) -> list[Path]:
    folders = []
    if os.environ.get("AIMOD_FASHION_MNIST"):
        folders.append(Path(os.environ["AIMOD_FASHION_MNIST"]))
    folders.append(_DEBIAN_DIR)
    if split == "test":
        folders.append(Path(str(resources.files("aimod.data") / "fashion_mnist")))
    return folders


def load_fashion_mnist(split: Literal["train", "test"] = "test") -> tuple[Tensor, Tensor]:
    """Images and labels of one split.

    Returns:
        ``(images, labels)``: uint8 ``(N, 28, 28)`` and int64 ``(N,)``; N is 60,000 or 10,000.

    Raises:
        InvalidArgumentError: For an unknown split, or when the training split is not installed (the message
            says how to install it).

    Example:
        >>> images, labels = load_fashion_mnist("test")
        >>> images.shape, images.dtype, labels[:5].tolist()
        (torch.Size([10000, 28, 28]), torch.uint8, [9, 2, 1, 1, 6])
    """
    if split not in _FILES:
        raise InvalidArgumentError("split", split, "'train' or 'test'")
    pattern = _FILES[split]
    for folder in _candidates(split):
        images_file, labels_file = folder / pattern.format("images", 3), folder / pattern.format("labels", 1)
        if images_file.is_file() and labels_file.is_file():
            images = np.frombuffer(gzip.decompress(images_file.read_bytes()), np.uint8, offset=16)
            labels = np.frombuffer(gzip.decompress(labels_file.read_bytes()), np.uint8, offset=8)
            return torch.from_numpy(images.reshape(-1, 28, 28).copy()), torch.from_numpy(labels.astype(np.int64))
    raise InvalidArgumentError(
        "split",
        split,
        "a split whose files are installed",
        "Install the training split with `apt-get install dataset-fashion-mnist`, or point AIMOD_FASHION_MNIST "
        "at a folder holding the four original .gz files.",
    )
