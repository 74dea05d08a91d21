from __future__ import annotations

import pytest

from aimod.catalog import load

pytest.importorskip("efficientnet_lite_pytorch")
skimage_data = pytest.importorskip("skimage.data")


def test_efficientnet_lite0_recognises_the_bundled_photos() -> None:
    loaded = load("efficientnet-lite0")
    assert loaded.num_classes == 1000
    inputs = loaded.preprocess([skimage_data.chelsea(), skimage_data.coffee()])
    assert inputs.shape == (2, 3, 224, 224)
    top = loaded.logits(inputs).argmax(1).tolist()
    assert [loaded.id2label[i] for i in top] == ["Egyptian cat", "espresso"]
