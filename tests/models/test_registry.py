from __future__ import annotations

import pytest
import torch

from aimod import UnknownModelError
from aimod.data.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist
from aimod.models import available, load


def test_available_lists_the_embedded_models() -> None:
    assert available() == ["efficientnet-lite0", "resnet-fashion", "segformer-scenes"]


def test_unknown_names_suggest_close_matches() -> None:
    with pytest.raises(UnknownModelError, match="Did you mean 'resnet-fashion'") as info:
        load("resnet-fasion")
    assert "hf:<model id or path>" in str(info.value)


def test_resnet_fashion_is_the_real_trained_model() -> None:
    loaded = load("resnet-fashion")
    assert loaded.task == "classification"
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
