"""Clean logit rows of a vision model on its bundled calibration or held-out inputs.

The inputs themselves are the catalog's (:mod:`aimod.catalog.inputs`): calibration never uses labels, and
held-out inputs are disjoint from calibration ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from aimod.catalog import Model, VisionModel
from aimod.errors import InvalidArgumentError

__all__ = ["LogitRows", "Part", "logit_rows"]

Part = Literal["calibration", "held-out"]


@dataclass(frozen=True)
class LogitRows:
    """Clean logits of a model on unlabelled inputs, one row per decision."""

    logits: Tensor
    """``(N, K)`` float32; pixels are rows for a segmenter."""
    groups: Tensor | None
    """``(N,)`` the independent unit of each row (a segmenter's image, a crop's photo); None when rows are."""
    inputs: int
    """Inputs (images) behind the rows."""
    description: str


def logit_rows(model: VisionModel, part: Part, count: int | None = None) -> LogitRows:
    """Clean logit rows of a catalog vision model (:func:`aimod.load`) on its calibration or held-out inputs."""
    from aimod.eval.sweep import cache_logits

    if part not in ("calibration", "held-out"):
        raise InvalidArgumentError("part", part, "'calibration' or 'held-out'")
    if not isinstance(model, VisionModel):
        shown = model.name if isinstance(model, Model) else type(model).__name__
        raise InvalidArgumentError("model", shown, "a vision model from aimod.load")
    inputs = model.inputs(part, count)
    assert inputs.images is not None  # vision models have images
    logits = cache_logits(model.logits, inputs.images, None, model.id2label).logits
    if logits.ndim == 4:  # (N, K, H, W) -> pixel rows, grouped by image
        groups = torch.arange(len(logits)).repeat_interleave(logits.shape[-2] * logits.shape[-1])
        rows = logits.movedim(1, -1).reshape(-1, logits.shape[1])
        return LogitRows(rows, groups, len(logits), inputs.description)
    return LogitRows(logits, inputs.groups, len(logits), inputs.description)
