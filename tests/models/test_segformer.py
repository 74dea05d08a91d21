from __future__ import annotations

import pytest
import torch

import aimod
from aimod.data.scenes import SCENE_CLASSES, make_scenes
from aimod.eval.metrics import confusion_matrix, metrics_from_confusion
from aimod.models import load
from aimod.models.registry import weights_path

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def scenes() -> tuple[torch.Tensor, torch.Tensor]:
    return make_scenes(60, split="test")


def test_segformer_scenes_is_a_trained_transformers_segformer(scenes: tuple[torch.Tensor, torch.Tensor]) -> None:
    from transformers import SegformerForSemanticSegmentation

    loaded = load("segformer-scenes")
    assert isinstance(loaded.model, SegformerForSemanticSegmentation)
    assert loaded.task == "segmentation"
    assert loaded.id2label == dict(enumerate(SCENE_CLASSES))
    images, labels = scenes
    logits = loaded.logits(loaded.preprocess(images))
    assert logits.shape == (60, 10, 32, 32)  # 1/4 of the 128 x 128 input
    up = torch.nn.functional.interpolate(logits, size=(128, 128), mode="bilinear", align_corners=False)
    metrics = metrics_from_confusion(confusion_matrix(up.argmax(1), labels, 10))
    assert metrics.miou > 0.55  # 0.6+ on the 500 held-out scenes of the training report


def test_hf_path_loads_the_same_model_through_the_same_code(scenes: tuple[torch.Tensor, torch.Tensor]) -> None:
    embedded = load("segformer-scenes")
    via_hf = load(f"hf:{weights_path('segformer-scenes')}")
    x = embedded.preprocess(scenes[0][:2])
    assert via_hf.task == "segmentation"
    torch.testing.assert_close(via_hf.logits(via_hf.preprocess(scenes[0][:2])), embedded.logits(x))


def test_wrapped_segformer_keeps_its_output_type_and_upsamples(scenes: tuple[torch.Tensor, torch.Tensor]) -> None:
    from transformers.modeling_outputs import SemanticSegmenterOutput

    loaded = load("segformer-scenes")
    x = loaded.preprocess(scenes[0][:3])
    wrapped = aimod.wrap(loaded.model, "sigma=1, stripe=+4", noise=aimod.KeyedNoise("seg secret"))
    out = wrapped(pixel_values=x)
    assert isinstance(out, SemanticSegmenterOutput)
    assert out.logits.shape == (3, 10, 128, 128)
    assert torch.equal(out.logits, wrapped(pixel_values=x).logits)
