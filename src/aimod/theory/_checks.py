"""Argument checks shared by the public theory functions; each raises a named aimod error."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from aimod._checks import check_finite, check_floating_tensor
from aimod.errors import InvalidArgumentError, InvalidLogitsError
from aimod.modulation import ClassKey, Id2Label, Modulation, ResolvedModulation

__all__ = ["check_labels", "check_logits", "check_sigmas", "focus_only", "output_dtype", "resolve"]

_SHAPE_FIX = (
    "Reshape to (N, K) with the classes last: logits.unsqueeze(0) for one sample, or "
    "logits.movedim(1, -1).reshape(-1, C) for segmentation logits of shape (B, C, H, W)."
)


def check_logits(logits: object) -> Tensor:
    """Checks that ``logits`` is a finite floating ``(N, K)`` tensor; returns a float64 CPU copy.

    Raises:
        InvalidLogitsError: If it is not a tensor, not floating, not 2-D, has no class, or has NaN/inf.
    """
    logits = check_floating_tensor(logits, "of shape (N, K)")
    if logits.ndim != 2 or logits.shape[1] == 0:
        raise InvalidLogitsError(
            "logits", f"a tensor of shape {tuple(logits.shape)}", "of shape (N, K) with K >= 1 classes", _SHAPE_FIX
        )
    z = logits.detach().to(device="cpu", dtype=torch.float64)
    check_finite(z, "Check the model's output; mask classes by dropping their columns, not with -inf.")
    return z


def output_dtype(logits: Tensor) -> torch.dtype:
    """float64 for float64 logits, float32 for every other floating dtype (float32, float16, bfloat16)."""
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


def check_labels(labels: object, num_samples: int, num_classes: int) -> Tensor:
    """Checks that ``labels`` is an integer ``(N,)`` tensor of ids in ``[0, K)``; returns an int64 CPU copy.

    Raises:
        InvalidArgumentError: If it is not an integer tensor of that shape, or an id is out of range.
    """
    if not isinstance(labels, Tensor):
        raise InvalidArgumentError(
            "labels", type(labels).__name__, "a torch.Tensor of class ids", "Convert with torch.as_tensor(...)."
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise InvalidArgumentError(
            "labels", f"a tensor of dtype {labels.dtype}", "an integer tensor of class ids", "Use labels.long()."
        )
    if tuple(labels.shape) != (num_samples,):
        raise InvalidArgumentError(
            "labels",
            f"a tensor of shape {tuple(labels.shape)}",
            f"of shape ({num_samples},), one class id per row of the logits",
            "Flatten it the same way as the logits, e.g. labels.reshape(-1).",
        )
    ids = labels.detach().to(device="cpu", dtype=torch.int64)
    bad = (ids < 0) | (ids >= num_classes)
    if bool(bad.any()):
        raise InvalidArgumentError(
            "labels",
            f"a tensor with {int(bad.sum())} ids outside [0, {num_classes}), e.g. {int(ids[bad][0])}",
            f"class ids in [0, {num_classes})",
            "Drop rows whose label is an ignore index (such as -1 or 255) before calling.",
        )
    return ids


def check_sigmas(sigmas: object) -> list[float]:
    """Checks that ``sigmas`` is a 1-D sequence or tensor of finite numbers >= 0; returns them as floats.

    Raises:
        InvalidArgumentError: Otherwise.
    """
    expected = "a 1-D sequence or tensor of finite numbers >= 0 (utility noise stds, in logit units)"
    fix = "For example torch.linspace(0, 10, 101)."
    if isinstance(sigmas, Tensor):
        if sigmas.ndim != 1 or sigmas.is_complex() or sigmas.dtype == torch.bool:
            raise InvalidArgumentError("sigmas", f"a tensor of shape {tuple(sigmas.shape)}", expected, fix)
        values = [float(v) for v in sigmas.detach().to("cpu", torch.float64).tolist()]
    elif isinstance(sigmas, Sequence) and not isinstance(sigmas, (str, bytes)):
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in sigmas):
            raise InvalidArgumentError("sigmas", sigmas, expected, fix)
        values = [float(v) for v in sigmas]
    else:
        raise InvalidArgumentError("sigmas", sigmas, expected, fix)
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise InvalidArgumentError("sigmas", values, expected, fix)
    return values


def focus_only(focus: Modulation | Mapping[ClassKey, float] | None) -> Modulation:
    """Turns the ``focus`` argument of the curve functions into a Modulation with sigma 0.

    Raises:
        InvalidArgumentError: If a Modulation with sigma != 0 is given (the curve sets sigma itself).
        InvalidModulationError: If the mapping is not a valid focus.
    """
    if focus is None:
        return Modulation()
    if isinstance(focus, Modulation):
        if focus.sigma != 0.0:
            raise InvalidArgumentError(
                "focus",
                focus,
                "a focus mapping, or a Modulation with sigma=0 (the utility sigma is what the curve varies)",
                "Pass modulation.focus instead of the modulation itself.",
            )
        return focus
    if isinstance(focus, Mapping):
        return Modulation(focus=focus)
    raise InvalidArgumentError(
        "focus", focus, "None, a mapping from class id or name to signed std, or a Modulation with sigma=0"
    )


def resolve(modulation: object, num_classes: int, id2label: Id2Label | None) -> ResolvedModulation:
    """Resolves the focus of ``modulation`` for ``num_classes`` classes.

    Raises:
        InvalidArgumentError: If ``modulation`` is not a Modulation.
        UnknownClassError: If a focus class is unknown.
    """
    if not isinstance(modulation, Modulation):
        raise InvalidArgumentError(
            "modulation",
            modulation,
            "an aimod.Modulation",
            "Build one with Modulation(sigma=..., focus={...}) or Modulation.parse('sigma=2, 3=+1').",
        )
    return modulation.resolve(num_classes, id2label)
