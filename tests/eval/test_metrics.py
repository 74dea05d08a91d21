from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from aimod import InvalidArgumentError
from aimod.eval.metrics import confusion_matrix, metrics_from_confusion

torchmetrics = pytest.importorskip("torchmetrics")


@given(seed=st.integers(0, 10_000), k=st.integers(2, 8), n=st.integers(5, 300))
def test_classification_metrics_match_torchmetrics(seed: int, k: int, n: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    target = torch.randint(0, k, (n,), generator=gen)
    preds = torch.where(torch.rand(n, generator=gen) < 0.6, target, torch.randint(0, k, (n,), generator=gen))
    m = metrics_from_confusion(confusion_matrix(preds, target, k))
    from torchmetrics.functional.classification import multiclass_accuracy, multiclass_precision, multiclass_recall

    assert m.accuracy == pytest.approx(float(multiclass_accuracy(preds, target, k, average="micro")))
    present = torch.bincount(target, minlength=k) > 0
    expected_recall = multiclass_recall(preds, target, k, average="none")
    torch.testing.assert_close(m.recall[present].float(), expected_recall[present].float())
    predicted = torch.bincount(preds, minlength=k) > 0
    expected_precision = multiclass_precision(preds, target, k, average="none")
    torch.testing.assert_close(m.precision[predicted].float(), expected_precision[predicted].float())


@given(seed=st.integers(0, 10_000), k=st.integers(2, 6))
def test_segmentation_iou_matches_torchmetrics_with_ignore_index(seed: int, k: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    target = torch.randint(0, k, (3, 12, 12), generator=gen)
    preds = torch.where(
        torch.rand(3, 12, 12, generator=gen) < 0.5, target, torch.randint(0, k, (3, 12, 12), generator=gen)
    )
    target[:, :2] = 255  # unlabelled rows
    m = metrics_from_confusion(confusion_matrix(preds, target, k, ignore_index=255))
    from torchmetrics.functional.classification import multiclass_jaccard_index

    expected = multiclass_jaccard_index(preds, target, k, average="none", ignore_index=255)
    union_present = ~torch.isnan(m.iou)
    torch.testing.assert_close(m.iou[union_present].float(), expected[union_present].float())
    assert m.miou == pytest.approx(float(m.iou[union_present].mean()))


def test_absent_classes_are_nan_and_left_out_of_the_mean() -> None:
    m = metrics_from_confusion(confusion_matrix(torch.tensor([0, 0, 1]), torch.tensor([0, 0, 1]), 3))
    assert math.isnan(float(m.iou[2]))
    assert m.miou == 1.0
    assert m.to_dict(["a", "b", "c"])["IoU"]["a"] == 1.0


def test_bad_inputs_raise() -> None:
    with pytest.raises(InvalidArgumentError, match="shape"):
        confusion_matrix(torch.zeros(3, dtype=torch.long), torch.zeros(4, dtype=torch.long), 2)
    with pytest.raises(InvalidArgumentError, match="ignore_index"):
        confusion_matrix(torch.zeros(2, dtype=torch.long), torch.tensor([0, 255]), 2)
