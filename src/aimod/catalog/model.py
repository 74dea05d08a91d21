"""What :func:`aimod.load` returns: a :class:`VisionModel` or a :class:`TextModel`, both a :class:`Model`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn

from aimod.errors import InvalidArgumentError

if TYPE_CHECKING:
    from aimod.catalog.inputs import Inputs

__all__ = ["KINDS", "PARTS", "Kind", "Model", "Part", "TextModel", "VisionModel"]

Kind = Literal["classification", "segmentation", "causal-lm"]
"""What a model decides: one class per image, one class per pixel, or the next token."""

KINDS: tuple[Kind, ...] = ("classification", "segmentation", "causal-lm")

Part = Literal["evaluation", "calibration", "held-out"]
"""The bundled inputs of a model: its evaluation set, and two disjoint unlabelled parts for calibration."""

PARTS: tuple[Part, ...] = ("evaluation", "calibration", "held-out")


@dataclass(frozen=True, eq=False)
class Model:
    """A frozen model from the catalog, whatever its kind: its name, kind, weights and bundled inputs.

    ``model`` is in eval mode with gradients off. :meth:`inputs` gives the bundled inputs (see
    :mod:`aimod.catalog.inputs`). Branch on :attr:`kind` (or on the class: :class:`VisionModel` for
    ``classification`` and ``segmentation``, :class:`TextModel` for ``causal-lm``).

    Example:
        >>> import aimod
        >>> m = aimod.load("resnet-fashion")
        >>> m.kind, m.num_classes, m.id2label[9], m.weights_hash.startswith("sha256:")
        ('classification', 10, 'Ankle boot', True)
    """

    name: str
    """The catalog name (or ``hf:...``)."""
    kind: Kind
    """``classification``, ``segmentation`` or ``causal-lm``."""
    model: nn.Module
    """The frozen model."""
    description: str
    """One line for reports: architecture and data."""

    @property
    def num_classes(self) -> int:
        """K: the number of classes, or the vocabulary size of a language model."""
        raise NotImplementedError

    @cached_property
    def weights_hash(self) -> str:
        """``sha256:<hex>`` over the weights (:func:`aimod.models.identity.weights_hash`); computed once."""
        from aimod.models.identity import weights_hash

        return weights_hash(self.model)

    def inputs(self, part: Part, count: int | None = None) -> Inputs:
        """The bundled ``evaluation``, ``calibration`` or ``held-out`` inputs; ``count`` caps their number.

        Raises:
            InvalidArgumentError: For another part.
        """
        from aimod.catalog.inputs import bundled

        if part not in PARTS:
            raise InvalidArgumentError("part", part, f"one of {', '.join(map(repr, PARTS))}")
        return bundled(self, part, count)


@dataclass(frozen=True, eq=False)
class VisionModel(Model):
    """An image classifier or semantic segmenter, with its preprocessing and class names."""

    id2label: dict[int, str]
    """Class names by id."""
    preprocess: Callable[[Any], Tensor]
    """Images -> model input batch (see :func:`aimod.models.preprocess.to_float_batch` for what it takes)."""

    @property
    def num_classes(self) -> int:
        """K, the number of classes."""
        return len(self.id2label)

    @torch.no_grad()
    def logits(self, inputs: Tensor) -> Tensor:
        """Clean logits of preprocessed inputs: ``(B, C)``, or ``(B, C, h, w)`` at a segmenter's resolution."""
        from aimod.models.wrap import extract_logits

        return extract_logits(self.model(inputs))


@dataclass(frozen=True, eq=False)
class TextModel(Model):
    """A causal language model with its tokenizer."""

    tokenizer: Any
    """The transformers tokenizer."""

    @property
    def num_classes(self) -> int:
        """K, the vocabulary size (the logits' last dimension)."""
        config: Any = self.model.config
        return int(config.vocab_size)


def expect_vision(model: Model) -> VisionModel:
    """``model`` as a :class:`VisionModel`, or an error that says what it is.

    Raises:
        InvalidArgumentError: For a language model.
    """
    if not isinstance(model, VisionModel):
        raise InvalidArgumentError(
            "model", model.name, "an image classifier or segmenter", f"It is a {model.kind} model; see aimod.text."
        )
    return model


def expect_text(model: Model) -> TextModel:
    """``model`` as a :class:`TextModel`, or an error that says what it is.

    Raises:
        InvalidArgumentError: For a vision model.
    """
    if not isinstance(model, TextModel):
        raise InvalidArgumentError("model", model.name, "a causal language model", f"It is a {model.kind} model.")
    return model
