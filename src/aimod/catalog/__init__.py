"""One catalog of named models, for every kind: ``aimod.load(name)``.

Names: the embedded models (:mod:`aimod.catalog.embedded`) and ``hf:<id or path>`` for any transformers image
classifier, semantic segmenter or causal language model (:mod:`aimod.catalog.hub`). Every name loads to a
:class:`Model` that says its kind and carries its bundled inputs (:mod:`aimod.catalog.inputs`).

Example:
    >>> import aimod
    >>> aimod.available()
    ['efficientnet-lite0', 'resnet-fashion', 'segformer-scenes', 'smollm2-135m']
    >>> aimod.catalog.kind("smollm2-135m"), aimod.catalog.kind("segformer-scenes")
    ('causal-lm', 'segmentation')
    >>> aimod.load("resnet-fashion").inputs("calibration", 8).description
    'Fashion-MNIST test images 0-7, labels unused'
"""

from __future__ import annotations

import difflib

from aimod.catalog.embedded import EMBEDDED
from aimod.catalog.inputs import Inputs
from aimod.catalog.model import KINDS, PARTS, Kind, Model, Part, TextModel, VisionModel, expect_text, expect_vision
from aimod.errors import UnknownModelError

__all__ = [
    "KINDS",
    "PARTS",
    "Inputs",
    "Kind",
    "Model",
    "Part",
    "TextModel",
    "VisionModel",
    "available",
    "expect_text",
    "expect_vision",
    "kind",
    "load",
]

_HF = "hf:"


def available() -> list[str]:
    """Names of the embedded models, sorted (``hf:<id or path>`` works too)."""
    return sorted(EMBEDDED)


def _check(name: object) -> str:
    if isinstance(name, str) and (name in EMBEDDED or (name.startswith(_HF) and len(name) > len(_HF))):
        return name
    shown = name if isinstance(name, str) else repr(name)
    close = difflib.get_close_matches(name, available(), n=3) if isinstance(name, str) else []
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise UnknownModelError(
        f"No model named {shown!r}.{hint} Available: {', '.join(available())}, or hf:<model id or path>."
    )


def kind(name: str) -> Kind:
    """The kind of a named model without loading its weights (an ``hf:`` config is read).

    Raises:
        UnknownModelError: For an unknown name, with close matches.
        ModelSourceError: For an ``hf:`` source that cannot be read or is of no supported kind.
    """
    name = _check(name)
    if name in EMBEDDED:
        return EMBEDDED[name][0]
    from aimod.catalog.hub import hf_kind

    return hf_kind(name[len(_HF) :])


def load(name: str) -> VisionModel | TextModel:
    """Loads a model by name, whatever its kind; see the module docstring for the names.

    Raises:
        UnknownModelError: For an unknown name, with close matches and the list of names.
        ModelSourceError: For an ``hf:`` source that cannot be read or is of no supported kind.
        MissingExtraError: When the model's optional dependencies are not installed.

    Example:
        >>> m = load("resnet-fashion")
        >>> m.kind, m.num_classes, m.id2label[9]
        ('classification', 10, 'Ankle boot')
    """
    name = _check(name)
    if name in EMBEDDED:
        return EMBEDDED[name][1]()
    from aimod.catalog.hub import load_hf

    return load_hf(name[len(_HF) :])
