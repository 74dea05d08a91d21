from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from aimod import InvalidArgumentError
from aimod.catalog import load
from aimod.cli import cli
from aimod.eval import CachedLogits, cache_logits, estimate, sweep
from aimod.eval.report import save_sweep

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def fashion() -> CachedLogits:
    loaded = load("resnet-fashion")
    data = loaded.inputs("evaluation", 1000)
    assert data.images is not None
    return cache_logits(loaded.logits, data.images, data.labels, loaded.id2label)


def test_utility_sweep_falls_towards_chance_and_matches_the_theory(fashion: CachedLogits) -> None:
    result = sweep(fashion, [0.0, 2.0, 8.0, 40.0], seeds=3, model_name="resnet-fashion")
    measured = [p.measured["accuracy"].mean for p in result.points]
    predicted = [p.predicted["accuracy"] for p in result.points]
    assert measured[0] == pytest.approx(result.clean["accuracy"])
    assert measured == sorted(measured, reverse=True)
    assert measured[-1] < 0.2
    for m, p in zip(measured, predicted, strict=True):
        assert abs(m - p) < 0.02


def test_focus_sweep_reports_the_class_and_the_bias_baseline(fashion: CachedLogits) -> None:
    result = sweep(fashion, [0.0, 4.0, 16.0], kind="focus", focus_class="Shirt", seeds=2)
    recall = [p.measured["recall"].mean for p in result.points]
    assert recall[0] < recall[1] < recall[2]
    assert result.focus_class == "Shirt"
    assert set(result.points[1].baseline) == {"accuracy", "recall", "precision", "IoU"}
    assert abs(result.points[2].predicted["recall"] - recall[2]) < 0.03


def test_segmentation_sweep_counts_pixels_and_skips_ignored_ones() -> None:
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (4, 8, 8), generator=gen)
    logits = 4 * torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).float()
    labels[:, 0] = 255
    cached = CachedLogits(logits, labels, {0: "a", 1: "b", 2: "c"}, ignore_index=255)
    result = sweep(cached, [0.0, 1.0], seeds=2)
    assert result.points[0].measured["mIoU"].mean == 1.0
    assert 0.5 < result.points[1].measured["accuracy"].mean < 1.0
    assert abs(result.points[1].predicted["accuracy"] - result.points[1].measured["accuracy"].mean) < 0.1


def test_save_sweep_writes_json_csv_and_png(fashion: CachedLogits, tmp_path: object) -> None:
    result = sweep(fashion, [0.0, 3.0], seeds=2, model_name="resnet-fashion")
    paths = save_sweep(result, tmp_path, "utility")  # type: ignore[arg-type]
    data = json.loads(paths["json"].read_text())
    assert data["points"][1]["measured"]["accuracy"]["low"] <= data["points"][1]["measured"]["accuracy"]["mean"]
    assert paths["csv"].read_text().splitlines()[0].startswith("value,accuracy_mean,accuracy_low")
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


def test_estimate_and_bad_arguments(fashion: CachedLogits) -> None:
    e = estimate([1.0, 1.0, 1.0])
    assert (e.mean, e.low, e.high) == (1.0, 1.0, 1.0)
    with pytest.raises(InvalidArgumentError, match="focus_class"):
        sweep(fashion, [1.0], kind="focus")
    with pytest.raises(InvalidArgumentError, match="kind"):
        sweep(fashion, [1.0], kind="temperature")  # type: ignore[arg-type]


def test_sweep_command_writes_its_report(tmp_path: object) -> None:
    out = f"{tmp_path}/report"
    args = ["sweep", "--model", "resnet-fashion", "--samples", "300", "--values", "0,4", "--seeds", "2", "--out", out]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output
    report = json.loads(Path(out, "utility.json").read_text())
    assert [p["value"] for p in report["points"]] == [0.0, 4.0]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--model", "resnet-fasion"], "Did you mean 'resnet-fashion'"),
        (["--values", "a:b"], "start:stop:count"),
        (["--values", "0,nan"], "start:stop:count"),
        (["--values", "-1,2"], "must be >= 0"),
        (["--kind", "focus"], "--focus CLASS"),
        (["--kind", "focus", "--focus", "Shrit", "--samples", "50"], "Did you mean 'Shirt'"),
        (["--kind", "focus", "--focus", "Shirt=+3", "--samples", "50"], "names without strengths"),
        (["--kind", "focus", "--focus", "Shirt, Coat", "--samples", "50"], "one class name or id"),
    ],
    ids=["model", "values", "nan", "negative", "no-focus", "unknown-class", "strength", "two-classes"],
)
def test_sweep_command_errors_are_usage_errors(args: list[str], fragment: str) -> None:
    result = CliRunner().invoke(cli, ["sweep", *args])
    assert result.exit_code == 2
    assert fragment in result.output


def test_sweep_and_calibration_intervals_are_the_same_student_t_interval() -> None:
    from scipy import stats

    from aimod.calibrate.vision import interval
    from aimod.eval.interval import t_interval

    values = [0.61, 0.55, 0.72, 0.64, 0.58]
    mean = sum(values) / len(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=stats.sem(values))
    assert t_interval(values) == pytest.approx((mean, low, high))
    e = estimate(values)
    assert (e.mean, e.low, e.high) == pytest.approx(interval(torch.tensor(values)))
    assert t_interval([0.2, 0.9], center=0.95)[2] == 1.0  # clipped: the values are fractions
