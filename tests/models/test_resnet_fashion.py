from __future__ import annotations

import torch

from aimod.catalog import load
from aimod.data.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist


def test_resnet_fashion_is_the_real_trained_model() -> None:
    loaded = load("resnet-fashion")
    assert loaded.kind == "classification"
    assert loaded.id2label == dict(enumerate(FASHION_MNIST_CLASSES))
    assert not any(p.requires_grad for p in loaded.model.parameters())
    images, labels = load_fashion_mnist("test")
    accuracy = float((loaded.logits(loaded.preprocess(images[:2000])).argmax(1) == labels[:2000]).float().mean())
    assert accuracy > 0.9


def test_preprocess_accepts_uint8_and_float_images() -> None:
    loaded = load("resnet-fashion")
    images, _ = load_fashion_mnist("test")
    as_uint8 = loaded.preprocess(images[:4])
    as_float = loaded.preprocess(images[:4, None].float() / 255)
    torch.testing.assert_close(as_uint8, as_float)
    assert as_uint8.shape == (4, 1, 28, 28)
