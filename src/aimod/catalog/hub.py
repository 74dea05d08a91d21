"""``hf:<id or path>``: any transformers image classifier, semantic segmenter or causal language model.

The kind comes from transformers' own auto-model mappings: an architecture named in ``config.json`` that one
of them lists decides (``GPT2LMHeadModel`` is a causal LM, ``SegformerForSemanticSegmentation`` a segmenter);
without one, the ``model_type`` decides when exactly one mapping has it. A vision checkpoint is preprocessed
by its own ``AutoImageProcessor`` (resize, crop, rescale and normalisation as its ``preprocessor_config.json``
says). A hub id (not a local folder) needs hub access; aimod itself never downloads anything.
"""

from __future__ import annotations

from typing import Any

from aimod.catalog._require import require
from aimod.catalog.model import Kind, TextModel, VisionModel
from aimod.errors import ModelSourceError

__all__ = ["hf_kind", "load_hf"]

_MAPPINGS: tuple[tuple[Kind, str], ...] = (
    ("causal-lm", "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"),
    ("segmentation", "MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES"),
    ("classification", "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES"),
)


def _transformers() -> Any:
    transformers = require("transformers", "vision")
    transformers.utils.logging.disable_progress_bar()  # no per-load progress bars in CLI output
    return transformers


def _config(source: str) -> Any:
    transformers = _transformers()
    try:
        return transformers.AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as error:  # no such folder or hub id, no hub access, a broken config.json
        raise ModelSourceError(f"hf:{source}", error) from None


def kind_of_config(config: Any, name: str = "hf:?") -> Kind:
    """The kind of a transformers config, by its architectures, else by its model type.

    Raises:
        ModelSourceError: When no mapping (or more than one, without architectures) claims the model.
    """
    from transformers.models.auto import modeling_auto

    model_type = getattr(config, "model_type", None)
    architectures = set(getattr(config, "architectures", None) or ())
    claims: list[Kind] = []
    for kind, table in _MAPPINGS:
        classes = getattr(modeling_auto, table).get(model_type)
        if classes is None:
            continue
        classes = {classes} if isinstance(classes, str) else set(classes)
        if architectures & classes:
            return kind
        claims.append(kind)
    if len(claims) == 1 and not architectures:
        return claims[0]
    supported = "an image classifier, a semantic segmenter or a causal language model"
    if claims:
        listed = ", ".join(sorted(architectures)) or "none"
        problem = (
            f"its model type {model_type!r} can be {' or '.join(claims)} and its architectures ({listed}) do "
            "not say which; name the architecture in config.json (e.g. its `architectures` list)"
        )
    else:
        problem = f"its model type {model_type!r} is not {supported} in transformers' auto-model mappings"
    raise ModelSourceError(name, problem)


def hf_kind(source: str) -> Kind:
    """The kind of ``hf:<source>`` from its config alone (no weights are read)."""
    return kind_of_config(_config(source), f"hf:{source}")


def load_hf(source: str) -> VisionModel | TextModel:
    """Loads ``hf:<source>`` (a hub id or a local folder) by its kind."""
    from aimod.catalog.embedded import freeze

    name = f"hf:{source}"
    config = _config(source)
    kind = kind_of_config(config, name)
    transformers = _transformers()
    try:
        if kind == "causal-lm":
            from aimod.text.models import from_pretrained

            model, tokenizer = from_pretrained(source)
            return TextModel(name, kind, model, f"{type(model).__name__} from {source}", tokenizer=tokenizer)
        auto = (
            transformers.AutoModelForSemanticSegmentation
            if kind == "segmentation"
            else transformers.AutoModelForImageClassification
        )
        model = auto.from_pretrained(source)
        processor = transformers.AutoImageProcessor.from_pretrained(source)
    except (OSError, ValueError) as error:  # missing or unreadable weights, tokenizer or preprocessor files
        raise ModelSourceError(name, str(error).splitlines()[0] if str(error) else repr(error)) from None
    from aimod.models.preprocess import ProcessorPreprocess

    return VisionModel(
        name,
        kind,
        freeze(model),
        f"{type(model).__name__} from {source}",
        id2label={int(k): str(v) for k, v in config.id2label.items()},
        preprocess=ProcessorPreprocess(processor, channels=int(getattr(config, "num_channels", 3))),
    )
