"""Logit checks shared by the operator and the theory (layer 0): one wording for each mistake."""

from __future__ import annotations

import torch
from torch import Tensor

from aimod.errors import InvalidLogitsError

__all__ = ["check_finite", "check_floating_tensor"]


def check_floating_tensor(logits: object, shape_hint: str) -> Tensor:
    """Returns ``logits`` if it is a non-empty floating tensor; raises InvalidLogitsError otherwise."""
    if not isinstance(logits, Tensor):
        raise InvalidLogitsError(
            "logits", type(logits).__name__, f"a torch.Tensor {shape_hint}", "Convert with torch.as_tensor(...)."
        )
    if not logits.is_floating_point():
        raise InvalidLogitsError(
            "logits", f"a tensor of dtype {logits.dtype}", "a floating tensor", "Convert with logits.float()."
        )
    return logits


def check_finite(logits: Tensor, fix: str) -> None:
    """Raises InvalidLogitsError, with the counts of NaN and infinite values, unless every value is finite."""
    finite = torch.isfinite(logits)
    if bool(finite.all()):
        return
    nan = int(torch.isnan(logits).sum())
    inf = int((~finite).sum()) - nan
    raise InvalidLogitsError(
        "logits", f"a tensor of shape {tuple(logits.shape)} with {nan} NaN and {inf} infinite values", "finite", fix
    )
