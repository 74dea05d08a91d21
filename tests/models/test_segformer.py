from __future__ import annotations

import pytest
import torch

import aimod
from aimod.catalog import load
from aimod.data.scenes import SCENE_CLASSES, make_scenes
from aimod.eval.metrics import confusion_matrix, metrics_from_confusion
from aimod.models.identity import weights_path

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def scenes() -> tuple[torch.Tensor, torch.Tensor]:
    return make_scenes(60, split="test")


def test_segformer_scenes_is_a_trained_transformers_segformer(scenes: tuple[torch.Tensor, torch.Tensor]) -> None:
    from transformers import SegformerForSemanticSegmentation

    loaded = load("segformer-scenes")
    assert isinstance(loaded.model, SegformerForSemanticSegmentation)
    assert loaded.kind == "segmentation"
    assert loaded.id2label == dict(enumerate(SCENE_CLASSES))
    images, labels = scenes
    logits = loaded.logits(loaded.preprocess(images))
    assert logits.shape == (60, 10, 32, 32)  # 1/4 of the 128 x 128 input
    up = torch.nn.functional.interpolate(logits, size=(128, 128), mode="bilinear", align_corners=False)
    metrics = metrics_from_confusion(confusion_matrix(up.argmax(1), labels, 10))
    assert metrics.miou > 0.55  # 0.6+ on the 500 held-out scenes of the training report


def test_hf_path_loads_the_same_model_with_its_own_processor(scenes: tuple[torch.Tensor, torch.Tensor]) -> None:
    embedded = load("segformer-scenes")
    via_hf = load(f"hf:{weights_path('segformer-scenes')}")
    assert via_hf.kind == "segmentation"
    assert via_hf.weights_hash == embedded.weights_hash
    pixels = (scenes[0][:2] * 255).round().to(torch.uint8)  # 8-bit images: what the processor works in
    x = via_hf.preprocess(pixels)
    torch.testing.assert_close(x, embedded.preprocess(pixels))  # its processor does what the recipe does
    torch.testing.assert_close(via_hf.logits(x), embedded.logits(x))


def test_wrapped_segformer_keeps_its_output_type_and_upsamples(scenes: tuple[torch.Tensor, torch.Tensor]) -> None:
    from transformers.modeling_outputs import SemanticSegmenterOutput

    loaded = load("segformer-scenes")
    x = loaded.preprocess(scenes[0][:3])
    wrapped = aimod.wrap(loaded.model, "sigma=1, stripe=+4", noise=aimod.KeyedNoise("seg secret"))
    out = wrapped(pixel_values=x)
    assert isinstance(out, SemanticSegmenterOutput)
    assert out.logits.shape == (3, 10, 128, 128)
    assert torch.equal(out.logits, wrapped(pixel_values=x).logits)
