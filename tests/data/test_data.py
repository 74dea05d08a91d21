from __future__ import annotations

import pytest
import torch

from aimod import InvalidArgumentError
from aimod.data import classifier_logits
from aimod.data.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist
from aimod.data.scenes import SCENE_CLASSES, make_scenes


def test_fashion_mnist_test_split_is_the_real_data() -> None:
    images, labels = load_fashion_mnist("test")
    assert images.shape == (10_000, 28, 28)
    assert images.dtype == torch.uint8
    assert torch.bincount(labels).tolist() == [1000] * 10  # the published balanced test split
    assert len(FASHION_MNIST_CLASSES) == 10


def test_fashion_mnist_bad_split_and_missing_training_files(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    with pytest.raises(InvalidArgumentError, match="'train' or 'test'"):
        load_fashion_mnist("validation")  # type: ignore[arg-type]
    monkeypatch.setenv("AIMOD_FASHION_MNIST", str(tmp_path))
    monkeypatch.setattr("aimod.data.fashion_mnist._DEBIAN_DIR", tmp_path)
    with pytest.raises(InvalidArgumentError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train")


def test_scenes_are_deterministic_sliceable_and_cover_every_class() -> None:
    images, labels = make_scenes(40, size=64)
    again_images, again_labels = make_scenes(10, start=30, size=64)
    assert torch.equal(again_images, images[30:])
    assert torch.equal(again_labels, labels[30:])
    assert set(labels.unique().tolist()) == set(range(len(SCENE_CLASSES)))
    assert float(images.min()) >= 0
    assert float(images.max()) <= 1


def test_scene_splits_differ_and_sizes_scale() -> None:
    train, _ = make_scenes(3, split="train", size=64)
    test, _ = make_scenes(3, split="test", size=64)
    assert not torch.equal(train, test)
    assert make_scenes(1, size=96)[0].shape == (1, 3, 96, 96)
    with pytest.raises(InvalidArgumentError):
        make_scenes(0)
    with pytest.raises(InvalidArgumentError):
        make_scenes(2, split="val")  # type: ignore[arg-type]


def test_synthetic_logits_are_seeded() -> None:
    a, la = classifier_logits(50, 4, seed=3)
    b, lb = classifier_logits(50, 4, seed=3)
    assert torch.equal(a, b)
    assert torch.equal(la, lb)
    with pytest.raises(InvalidArgumentError):
        classifier_logits(10, 1)
