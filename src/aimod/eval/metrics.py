"""Classification and segmentation metrics from one confusion matrix.

Every metric aimod reports comes from :func:`confusion_matrix`, so accuracy, per-class recall, precision,
IoU and mIoU always agree with each other. ``ignore_index`` pixels are dropped before counting. Classes
absent from both prediction and target have an undefined IoU (NaN) and are left out of the mean, as in
torchmetrics' ``MeanIoU`` with ``per_class`` averaging over present classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from aimod.errors import InvalidArgumentError

__all__ = ["Metrics", "confusion_matrix", "metrics_from_confusion"]


def confusion_matrix(preds: Tensor, target: Tensor, num_classes: int, *, ignore_index: int | None = None) -> Tensor:
    """Counts of (target class, predicted class) pairs.

    Args:
        preds: Predicted class ids, any shape.
        target: True class ids, same shape as ``preds``.
        num_classes: K.
        ignore_index: Target value to skip (e.g. 255 for unlabelled pixels).

    Returns:
        int64 ``(K, K)``; row = target, column = prediction.

    Example:
        >>> confusion_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 255]), 3, ignore_index=255)
        tensor([[1, 0, 0],
                [0, 1, 0],
                [0, 1, 0]])
    """
    if preds.shape != target.shape:
        raise InvalidArgumentError(
            "preds", f"a tensor of shape {tuple(preds.shape)}", f"the shape of target, {tuple(target.shape)}"
        )
    preds, target = preds.reshape(-1).long(), target.reshape(-1).long()
    if ignore_index is not None:
        keep = target != ignore_index
        preds, target = preds[keep], target[keep]
    bad = (target < 0) | (target >= num_classes) | (preds < 0) | (preds >= num_classes)
    if bool(bad.any()):
        raise InvalidArgumentError(
            "target/preds",
            f"values outside [0, {num_classes})",
            f"class ids in [0, {num_classes})",
            "Pass ignore_index for unlabelled pixels.",
        )
    return torch.bincount(target * num_classes + preds, minlength=num_classes**2).view(num_classes, num_classes)


@dataclass(frozen=True)
class Metrics:
    """Metrics of one confusion matrix (fractions in [0, 1]; NaN where undefined)."""

    accuracy: float
    """Fraction of counted samples (pixels) whose prediction equals the target."""
    recall: Tensor
    """(K,) per class: TP / (TP + FN)."""
    precision: Tensor
    """(K,) per class: TP / (TP + FP)."""
    iou: Tensor
    """(K,) per class: TP / (TP + FP + FN)."""
    miou: float
    """Mean IoU over classes present in the target or the prediction."""

    def to_dict(self, class_names: list[str] | tuple[str, ...] | None = None) -> dict[str, object]:
        """JSON-ready form, per-class values keyed by class name (or id)."""
        names = list(class_names) if class_names is not None else [str(i) for i in range(len(self.iou))]
        return {
            "accuracy": self.accuracy,
            "mIoU": self.miou,
            "recall": dict(zip(names, self.recall.tolist(), strict=True)),
            "precision": dict(zip(names, self.precision.tolist(), strict=True)),
            "IoU": dict(zip(names, self.iou.tolist(), strict=True)),
        }


def metrics_from_confusion(cm: Tensor) -> Metrics:
    """Accuracy, per-class recall, precision and IoU, and mIoU from a ``(K, K)`` confusion matrix.

    Example:
        >>> m = metrics_from_confusion(torch.tensor([[3, 1], [0, 4]]))
        >>> round(m.accuracy, 3), [round(v, 3) for v in m.iou.tolist()], round(m.miou, 3)
        (0.875, [0.75, 0.8], 0.775)
    """
    cm = cm.double()
    tp = cm.diag()
    support, predicted = cm.sum(1), cm.sum(0)
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    recall = torch.where(support > 0, tp / support.clamp(min=1), nan)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), nan)
    union = support + predicted - tp
    iou = torch.where(union > 0, tp / union.clamp(min=1), nan)
    total = float(cm.sum())
    return Metrics(
        accuracy=float(tp.sum()) / total if total else float("nan"),
        recall=recall,
        precision=precision,
        iou=iou,
        miou=float(iou.nanmean()) if bool((union > 0).any()) else float("nan"),
    )
