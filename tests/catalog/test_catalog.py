from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import aimod
from aimod import ModelSourceError, UnknownModelError
from aimod.catalog import TextModel, VisionModel, kind, load
from aimod.models.identity import weights_hash
from tests.catalog._checkpoints import gpt2_causal_lm, segformer_segmenter, vit_classifier

pytest.importorskip("transformers")


def test_available_lists_every_embedded_model_of_every_kind() -> None:
    assert aimod.available() == ["efficientnet-lite0", "resnet-fashion", "segformer-scenes", "smollm2-135m"]
    kinds = {name: kind(name) for name in aimod.available()}
    assert kinds == {
        "efficientnet-lite0": "classification",
        "resnet-fashion": "classification",
        "segformer-scenes": "segmentation",
        "smollm2-135m": "causal-lm",
    }
    assert aimod.load is aimod.catalog.load


@pytest.mark.parametrize(
    ("name", "close"),
    [("resnet-fasion", "resnet-fashion"), ("smollm2", "smollm2-135m"), ("segformer", "segformer-scenes")],
)
def test_one_unknown_name_error_for_every_kind_with_close_matches(name: str, close: str) -> None:
    with pytest.raises(UnknownModelError, match=f"Did you mean '{close}'") as info:
        load(name)
    message = str(info.value)
    assert message.startswith(f"No model named {name!r}.")  # not "no vision model" or "no language model"
    assert "smollm2-135m" in message
    assert "resnet-fashion" in message
    assert "hf:<model id or path>" in message


@pytest.mark.parametrize("name", ["", "hf:", None, 3])
def test_malformed_names_are_unknown(name: object) -> None:
    with pytest.raises(UnknownModelError):
        load(name)  # type: ignore[arg-type]


def test_resnet_fashion_entry_and_its_bundled_inputs() -> None:
    model = load("resnet-fashion")
    assert isinstance(model, VisionModel)
    assert (model.kind, model.num_classes, model.id2label[9]) == ("classification", 10, "Ankle boot")
    assert model.weights_hash == weights_hash(model.model)
    evaluation = model.inputs("evaluation", 300)
    assert evaluation.images is not None
    assert evaluation.labels is not None
    assert evaluation.images.shape == (300, 1, 28, 28)
    accuracy = (model.logits(evaluation.images).argmax(1) == evaluation.labels).float().mean()
    assert accuracy > 0.9
    calibration, held = model.inputs("calibration", 20), model.inputs("held-out", 20)
    assert calibration.labels is None
    assert held.labels is None
    assert calibration.images is not None
    assert held.images is not None
    assert not torch.equal(calibration.images, held.images)  # disjoint parts
    assert "0-19" in calibration.description
    assert "5000-5019" in held.description
    with pytest.raises(aimod.InvalidArgumentError, match="'evaluation', 'calibration', 'held-out'"):
        model.inputs("train", 5)  # type: ignore[arg-type]


def test_efficientnet_and_segformer_entries() -> None:
    photos = load("efficientnet-lite0")
    assert isinstance(photos, VisionModel)
    assert (photos.kind, photos.num_classes) == ("classification", 1000)
    crops = photos.inputs("held-out", 4)
    assert crops.images is not None
    assert crops.groups is not None
    assert crops.images.shape == (4, 3, 224, 224)
    assert crops.groups.tolist() == [0, 1, 2, 3]  # crop k shows photo k mod 18
    scenes = load("segformer-scenes")
    assert isinstance(scenes, VisionModel)
    assert (scenes.kind, scenes.num_classes) == ("segmentation", 10)
    evaluation = scenes.inputs("evaluation", 3)
    assert evaluation.labels is not None
    assert evaluation.labels.shape == (3, 128, 128)


@pytest.mark.slow
def test_smollm2_entry_is_a_text_model_with_fact_questions() -> None:
    pytest.importorskip("gguf")
    model = load("smollm2-135m")
    assert isinstance(model, TextModel)
    assert model.kind == "causal-lm"
    assert model.num_classes == int(model.model.config.vocab_size)
    assert model.tokenizer("Paris").input_ids
    calibration, held = model.inputs("calibration", 10), model.inputs("held-out", 10)
    assert len(calibration.items) == 10
    assert not set(calibration.prompts) & set(held.prompts)
    assert len(model.inputs("evaluation").items) == 220


def test_hf_image_classifier_uses_its_own_image_processor(tmp_path: Path) -> None:
    import transformers

    folder = vit_classifier(tmp_path / "vit")
    assert kind(f"hf:{folder}") == "classification"
    model = load(f"hf:{folder}")
    assert isinstance(model, VisionModel)
    assert model.id2label == {0: "cat", 1: "dog", 2: "bird"}
    images = np.random.default_rng(0).integers(0, 256, (2, 45, 37, 3), dtype=np.uint8)
    own = transformers.AutoImageProcessor.from_pretrained(folder)(list(images), return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(model.preprocess(images), own)  # nearest resize and its mean/std, not aimod's
    torch.testing.assert_close(model.preprocess(torch.from_numpy(images).permute(0, 3, 1, 2)), own)
    assert model.logits(model.preprocess(images)).shape == (2, 3)
    mixed = [images[0], images[1][:30, :20]]  # a list may mix sizes
    assert model.preprocess(mixed).shape == (2, 3, 32, 32)


def test_hf_segmenter(tmp_path: Path) -> None:
    folder = segformer_segmenter(tmp_path / "seg")
    model = load(f"hf:{folder}")
    assert isinstance(model, VisionModel)
    assert model.kind == "segmentation"
    x = model.preprocess(torch.rand(2, 3, 50, 70))
    assert x.shape == (2, 3, 64, 64)
    assert model.logits(x).shape == (2, 4, 16, 16)
    assert model.inputs("calibration", 2).images is not None


def test_hf_gpt2_is_a_causal_lm_not_a_vision_model(tmp_path: Path) -> None:
    folder = gpt2_causal_lm(tmp_path / "gpt2")
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["GPT2LMHeadModel"]
    assert kind(f"hf:{folder}") == "causal-lm"
    model = load(f"hf:{folder}")
    assert isinstance(model, TextModel)
    assert type(model.model).__name__ == "GPT2LMHeadModel"
    assert model.num_classes == len(model.tokenizer)
    from aimod.text import generate

    out = generate(model.model, model.tokenizer, ["Paris is"], "sigma=1", noise=aimod.KeyedNoise("s"))
    assert isinstance(out[0], str)
    assert len(model.inputs("held-out", 5).prompts) == 5


def _llama_config() -> object:
    import transformers

    return transformers.LlamaConfig(
        vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2
    )


def test_kind_reads_the_config_only(tmp_path: Path) -> None:

    _llama_config().save_pretrained(tmp_path)
    assert kind(f"hf:{tmp_path}") == "causal-lm"  # no weights in the folder, none read


def test_hub_and_file_errors_are_reported_as_such(tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match="Cannot load hf:") as info:
        load(f"hf:{tmp_path / 'missing'}")
    assert "vision" not in str(info.value)
    assert isinstance(info.value, OSError)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(ModelSourceError, match="broken"):
        load(f"hf:{tmp_path / 'broken'}")

    _llama_config().save_pretrained(tmp_path / "empty")
    with pytest.raises(ModelSourceError, match="Cannot load"):  # a config without weights or tokenizer
        load(f"hf:{tmp_path / 'empty'}")


def test_unsupported_and_ambiguous_configs_say_why(tmp_path: Path) -> None:
    import transformers

    transformers.T5Config(d_model=8, num_layers=1, num_heads=1, d_ff=8).save_pretrained(tmp_path / "t5")
    with pytest.raises(ModelSourceError, match="'t5' is not an image classifier"):
        kind(f"hf:{tmp_path / 't5'}")
    config = transformers.SegformerConfig()
    config.architectures = None
    config.save_pretrained(tmp_path / "segformer")
    with pytest.raises(ModelSourceError, match="can be segmentation or classification"):
        kind(f"hf:{tmp_path / 'segformer'}")
