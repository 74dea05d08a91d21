from __future__ import annotations

import math
from pathlib import Path

import pytest

from aimod import InvalidArgumentError
from aimod.calibrate import Calibration, Tier, check_model, check_targets, load_tiers, parse_tiers, save_tiers, validate
from aimod.errors import InvalidTargetError


def test_parse_tiers_keeps_order_and_rejects_malformed_items() -> None:
    assert list(parse_tiers(["b=0.9", "a=0.5"])) == ["b", "a"]
    assert parse_tiers({"x": 1}) == {"x": 1.0}
    cases = [
        (["free"], "NAME=TARGET"),
        (["a=0.5", "a=0.6"], "each tier name once"),
        (["a=high"], "target of tier 'a'"),
        (["a b=0.5"], "tier name"),
        (["premıum=0.5"], "tier name"),
        (["free=0.5", "FREE=0.6"], "ignoring case"),
        ([], "at least one"),
    ]
    for bad, match in cases:
        with pytest.raises(InvalidTargetError, match=match):
            parse_tiers(bad)


@pytest.mark.parametrize(
    ("targets", "match"),
    [
        ({"free": 0.1}, r"\(1/K, 1\] = \(0.1, 1\]"),
        ({"free": 1.01}, "1/K, 1"),
        ({"free": math.nan}, "1/K, 1"),
        ({"a": 0.9, "b": 0.5, "c": 0.7}, "strictly increasing or"),
        ({"a": 0.9, "b": 0.9}, "strictly increasing or"),
    ],
)
def test_check_targets_rejects_out_of_range_and_non_monotone_tiers(targets: dict[str, float], match: str) -> None:
    with pytest.raises(InvalidTargetError, match=match):
        check_targets(targets, num_classes=10)


def test_monotone_tiers_in_either_order_are_fine() -> None:
    check_targets({"premium": 1.0, "free": 0.5}, 10)
    check_targets({"free": 0.5, "premium": 1.0}, 10)


def _calibration() -> Calibration:
    return Calibration(
        model="resnet-fashion",
        weights_sha256="sha256:" + "ab" * 32,
        num_classes=10,
        metric="agreement",
        method="theory",
        inputs="test images",
        samples=5000,
        date="2026-11-24T00:00:00+00:00",
        tiers=(Tier("premium", 1.0, 0.0, 1.0, 1.0, 1.0), Tier("free", 0.5, 6.2, 0.5, 0.49, 0.51, 5.9, 6.5)),
        extra={"keys": 2},
    )


def test_tiers_file_round_trips(tmp_path: Path) -> None:
    path = save_tiers(_calibration(), tmp_path / "sub" / "tiers.toml")
    text = path.read_text()
    assert text.startswith("# aimod tiers file")
    assert "[tiers.free]" in text
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["tiers.toml"]
    loaded = load_tiers(path)
    assert loaded == _calibration()
    assert loaded.tier("free").sigma == 6.2
    with pytest.raises(InvalidArgumentError, match="one of"):
        loaded.tier("gold")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda t: t.replace('name = "resnet-fashion"\n', ""), r"`model\.name` required"),
        (lambda t: t.replace("sigma = 6.2", "sigma = -1.0"), r"`tiers\.free\.sigma` must be 0 for a target of 1"),
        (lambda t: t.replace("sigma = 6.2", 'sigma = "big"'), r"`tiers\.free\.sigma` must be a valid number"),
        (lambda t: t.replace("sigma = 6.2", "sigma = nan"), r"`tiers\.free\.sigma` must be a finite number"),
        (lambda t: t.replace("sigma = 6.2", "sigma = 0.0"), r"`tiers\.free\.sigma` must be 0 for a target of 1"),
        (lambda t: t.replace("target = 0.5", "target = 7.0"), r"`tiers\.free\.target` must be a number in \(1/K"),
        (lambda t: t.replace("target = 0.5", "target = nan"), r"`tiers\.free\.target` must be a finite number"),
        (lambda t: t.replace("low = 0.49", "low = 0.99"), "low <= predicted <= high"),
        (lambda t: t.replace("predicted = 0.5\n", "predicted = inf\n"), r"`tiers\.free\.predicted` must be a finite"),
        (lambda t: t.replace("sigma = 0.0\n", "sigma = 5.0\n", 1), r"`tiers\.premium\.sigma` must be 0"),
        (lambda t: t.replace("[tiers.free]", '[tiers."fr ee"]'), "tier name"),
        (lambda t: t.replace("[tiers.free]", "[tiers.Premium]"), "tier name"),
        (lambda t: t.replace("num_classes = 10", "num_classes = -3"), r"`model\.num_classes` must be greater than"),
        (lambda t: t.replace("samples = 5000", "samples = 0"), r"`calibration\.samples` must be greater than or equal"),
        (
            lambda t: t.replace('weights_sha256 = "sha256:', 'weights_sha256 = "xx256:'),
            r"weights_sha256` must be 'sha256",
        ),
        (lambda t: t.replace("sigma_low = 5.9", "sigmaa = 1"), r"`tiers\.free\.sigmaa` an unknown field"),
        (lambda t: t.replace("sigma_low = 5.9", 'sigma_low = "nan"'), r"`tiers\.free\.sigma_low` must be a valid"),
        (lambda t: t.replace("keys = 2", "keys = 2\n[oops]"), r"`oops` an unknown field"),
        (lambda t: t.replace("[tiers.free]", "[tiers.free"), "valid UTF-8 TOML"),
        (lambda t: t.split("[tiers.premium]")[0], r"`tiers` required"),
    ],
)
def test_bad_tiers_files_name_the_field(tmp_path: Path, edit: object, match: str) -> None:
    path = save_tiers(_calibration(), tmp_path / "tiers.toml")
    path.write_text(edit(path.read_text()))  # type: ignore[operator]
    with pytest.raises(InvalidArgumentError, match=match):
        load_tiers(path)


def test_unreadable_or_non_utf8_files_are_clean_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="readable file"):
        load_tiers(tmp_path / "missing.toml")
    (tmp_path / "latin.toml").write_bytes(b"[model]\nname = '\xe9'\n")
    with pytest.raises(InvalidArgumentError, match="UTF-8"):
        load_tiers(tmp_path / "latin.toml")


def test_a_lower_tier_never_gets_a_smaller_sigma() -> None:
    calibration = _calibration()
    swapped = Calibration(
        **{**calibration.__dict__, "tiers": (Tier("standard", 0.9, 7.0, 0.9, 0.89, 0.91), calibration.tiers[1])}
    )
    with pytest.raises(InvalidArgumentError, match="greater than tier 'standard'"):
        validate(swapped)


def test_save_leaves_nothing_behind_when_it_cannot_write(tmp_path: Path) -> None:
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(InvalidArgumentError, match="writable file path"):
        save_tiers(_calibration(), tmp_path / "dir.toml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.toml"]


def test_check_model_refuses_a_file_for_another_model() -> None:
    calibration = _calibration()
    check_model(calibration, "resnet-fashion", "sha256:" + "ab" * 32, 10)
    with pytest.raises(InvalidArgumentError, match=r"model\.weights_sha256"):
        check_model(calibration, "resnet-fashion", "sha256:" + "cd" * 32, 10)
    with pytest.raises(InvalidArgumentError, match=r"model\.name"):
        check_model(calibration, "efficientnet-lite0", "sha256:" + "ab" * 32, 10)
