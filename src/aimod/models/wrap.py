"""``aimod.wrap``: any PyTorch classifier or segmenter, with its logits passed through ``modulate_logits``.

The wrapped model's ``forward`` returns the same output type as the model's: a plain tensor, a transformers
output (``ImageClassifierOutput``, ``SemanticSegmenterOutput``, ...) whose ``.logits`` is replaced, or a dict
whose ``"logits"`` or ``"out"`` entry is replaced.

Segmentation resolution. SegFormer's logits are at 1/4 of the input resolution. ``resolution="labels"`` (the
default) first upsamples them bilinearly to the label size (the input's size unless ``label_size`` is given),
then adds noise independently to every output pixel; ``resolution="logits"`` adds it at the model's own
resolution. The default is what the published per-pixel results and aimod's theory describe: each released
pixel's decision is the argmax of its clean logits plus i.i.d. noise of std sigma. Noise added before
upsampling is shared by neighbouring pixels and shrunk by the interpolation weights (its variance at a
pixel is sigma² times the sum of the squared weights, down to a quarter of sigma²), so the same sigma
would modulate less and the per-pixel theory would not hold.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from aimod.digest import digest
from aimod.errors import InvalidArgumentError
from aimod.modulation import Id2Label, Modulation
from aimod.noise import KeyedNoise, NoiseSource
from aimod.redistribute import modulate_logits

__all__ = [
    "KeysHook",
    "ModulatedModel",
    "extract_logits",
    "modulate_segmentation",
    "replace_logits",
    "upsample_logits",
    "wrap",
]

KeysHook = Callable[[Tensor, Tensor], Tensor]
"""``keys(inputs, clean_logits) -> (B,) int64``: the row keys of keyed noise, from the model input and its clean
logits (before any upsampling), e.g. ``lambda x, z: aimod.content_keys.fingerprint_keys(z, 0.5)``."""


def upsample_logits(logits: Tensor, size: tuple[int, ...] | None) -> Tensor:
    """Segmentation logits ``(B, C, h, w)`` resized bilinearly to ``size`` (the label size); as they are if equal."""
    if size is None or tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


def modulate_segmentation(
    logits: Tensor,
    modulation: Modulation | Sequence[Modulation],
    size: tuple[int, ...] | None,
    *,
    noise: NoiseSource,
    keys: Tensor | None,
    id2label: Id2Label | None,
) -> Tensor:
    """The one segmentation path: upsample ``(B, C, h, w)`` logits to ``size`` (bilinear), then modulate per pixel.

    The wrapper (``resolution="labels"``) and the server call this, and the sweeps cache logits through the same
    :func:`upsample_logits`, so a pixel's decision is the argmax of its upsampled clean logits plus noise drawn at
    that pixel, as the theory assumes.
    """
    return modulate_logits(upsample_logits(logits, size), modulation, dim=1, noise=noise, keys=keys, id2label=id2label)


def extract_logits(output: Any) -> Tensor:
    """The logits inside a model's output: a tensor, an object with ``.logits``, or a dict.

    Raises:
        InvalidArgumentError: If no logits can be found.
    """
    if isinstance(output, Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    if isinstance(output, Mapping):
        for key in ("logits", "out"):
            if isinstance(output.get(key), Tensor):
                return output[key]  # type: ignore[no-any-return]
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]  # transformers with return_dict=False: logits first
    raise InvalidArgumentError(
        "model output",
        type(output).__name__,
        "a tensor, an object with a .logits tensor, a dict with a 'logits' or 'out' tensor, or a tuple with "
        "the logits first",
        "Wrap a model whose forward returns its logits.",
    )


def replace_logits(output: Any, logits: Tensor) -> Any:
    """The same output with its logits replaced (a shallow copy; the original is not modified)."""
    if isinstance(output, Tensor):
        return logits
    if hasattr(output, "logits") and isinstance(output.logits, Tensor) and isinstance(output, Mapping):
        # transformers ModelOutput: an ordered dict and a dataclass at once
        return type(output)(**{**output, "logits": logits})
    if isinstance(output, Mapping):
        key = "logits" if isinstance(output.get("logits"), Tensor) else "out"
        return {**output, key: logits}
    if isinstance(output, (tuple, list)):
        return type(output)([logits, *output[1:]])
    copy_ = copy.copy(output)
    copy_.logits = logits
    return copy_


_INPUT_NAMES = ("pixel_values", "input_ids", "x", "input", "inputs", "images")


def _key_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Tensor | None:
    """The model input that keys the noise and sets the label size.

    The first positional tensor, else the first of the usual input names, else the only tensor keyword; never a
    mask that happens to come first.
    """
    for value in args:
        if isinstance(value, Tensor):
            return value
    for name in _INPUT_NAMES:
        if isinstance(kwargs.get(name), Tensor):
            return kwargs[name]  # type: ignore[no-any-return]
    tensors = [v for v in kwargs.values() if isinstance(v, Tensor)]
    if len(tensors) == 1:
        return tensors[0]
    if tensors:
        raise InvalidArgumentError(
            "inputs",
            f"keyword tensors {sorted(k for k, v in kwargs.items() if isinstance(v, Tensor))}",
            f"the model input passed positionally or under one of {', '.join(_INPUT_NAMES)}",
            "Pass the input first, e.g. wrapped(x, mask=m).",
        )
    return None


class ModulatedModel(nn.Module):
    """A frozen model whose logits are modulated; build it with :func:`wrap`."""

    def __init__(
        self,
        model: nn.Module,
        modulation: Modulation | Sequence[Modulation],
        *,
        noise: NoiseSource,
        id2label: Id2Label | None,
        resolution: Literal["labels", "logits"],
        label_size: tuple[int, int] | None,
        keys: KeysHook | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.modulation = modulation
        self.noise = noise
        self.id2label = id2label
        self.resolution = resolution
        self.label_size = label_size
        self.keys = keys

    def train(self, mode: bool = True) -> ModulatedModel:
        """Keeps the wrapped model in eval mode.

        A modulated model is for inference, and batch-norm statistics must never move.
        """
        super().train(mode)
        self.model.eval()
        return self

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Runs the model without gradients and returns its output with modulated logits."""
        with torch.no_grad():
            output = self.model(*args, **kwargs)
            logits = extract_logits(output)
            inputs = _key_input(args, kwargs)
            keys = None
            if isinstance(self.noise, KeyedNoise):
                if inputs is None:
                    raise InvalidArgumentError(
                        "inputs", "no tensor argument", "a tensor input to key the noise on (aimod.digest)"
                    )
                keys = self.keys(inputs, logits) if self.keys is not None else digest(inputs)
            if logits.ndim == 4:  # (B, C, h, w) segmentation
                size = self.label_size or (tuple(inputs.shape[-2:]) if inputs is not None else None)
                modulated = modulate_segmentation(
                    logits,
                    self.modulation,
                    size if self.resolution == "labels" else None,
                    noise=self.noise,
                    keys=keys,
                    id2label=self.id2label,
                )
            else:
                modulated = modulate_logits(
                    logits, self.modulation, dim=-1, noise=self.noise, keys=keys, id2label=self.id2label
                )
        return replace_logits(output, modulated)


def wrap(
    model: nn.Module,
    modulation: Modulation | str | Sequence[Modulation],
    *,
    noise: NoiseSource,
    id2label: Id2Label | None = None,
    resolution: Literal["labels", "logits"] = "labels",
    label_size: tuple[int, int] | None = None,
    keys: KeysHook | None = None,
) -> ModulatedModel:
    """Wraps a classifier or segmenter so that its forward returns modulated logits.

    Args:
        model: Any ``nn.Module`` returning logits ``(B, C)`` or ``(B, C, h, w)``, directly or as ``.logits``
            or a dict entry. It is put in eval mode; its weights are never changed; forward runs without grad.
        modulation: A Modulation (or its string form) for every row, or one per row.
        noise: ``SeededNoise(seed)``, or ``KeyedNoise(secret)`` keyed by ``aimod.digest`` of each input row, so
            the same image always gets the same answer.
        id2label: Class names; defaults to ``model.config.id2label`` when the model has one.
        resolution: Segmentation only: ``"labels"`` (default) modulates after upsampling to the label size,
            ``"logits"`` at the model's resolution; see the module docstring for why.
        label_size: Segmentation only: the label size to upsample to; defaults to the input's size.
        keys: With keyed noise, ``keys(inputs, clean_logits)`` gives the row keys instead of ``aimod.digest`` of
            the input: e.g. the server's content keys (:mod:`aimod.content_keys`), so the wrapper and the server
            decide alike.

    Raises:
        InvalidModulationError / UnknownClassError: At once, if the modulation is invalid for this model.

    Example:
        >>> import aimod
        >>> net = nn.Linear(4, 3)
        >>> wrapped = aimod.wrap(net, "sigma=1, 2=+2", noise=aimod.KeyedNoise("secret"))
        >>> x = torch.randn(5, 4)
        >>> torch.equal(wrapped(x), wrapped(x))   # same input, same answer
        True
    """
    if resolution not in ("labels", "logits"):
        raise InvalidArgumentError("resolution", resolution, "'labels' or 'logits'")
    if not isinstance(model, nn.Module):
        raise InvalidArgumentError("model", type(model).__name__, "a torch.nn.Module")
    if id2label is None:
        config_labels = getattr(getattr(model, "config", None), "id2label", None)
        if isinstance(config_labels, Mapping) and config_labels:
            id2label = {int(k): str(v) for k, v in config_labels.items()}
    mods: Modulation | Sequence[Modulation]
    if isinstance(modulation, (Modulation, str, Mapping)):
        mods = Modulation.coerce(modulation)
        if id2label is not None:
            mods.resolve(len(id2label), id2label)  # fail now, not at the first forward
    elif isinstance(modulation, Sequence):
        mods = [Modulation.coerce(m) for m in modulation]
    else:
        raise InvalidArgumentError(
            "modulation", modulation, "a Modulation, its string form, or one per row", "E.g. 'sigma=2'."
        )
    model.eval()
    return ModulatedModel(
        model, mods, noise=noise, id2label=id2label, resolution=resolution, label_size=label_size, keys=keys
    )
