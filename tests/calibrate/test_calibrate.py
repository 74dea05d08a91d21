from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from aimod import Modulation, SeededNoise, modulate_logits
from aimod.calibrate import calibrate_logits, focus_effect, load_tiers
from aimod.calibrate.vision import interval
from aimod.cli import cli
from aimod.data import classifier_logits


def _agreement(z: torch.Tensor, modulation: Modulation, seeds: int = 4) -> float:
    clean = z.argmax(1)
    runs = [
        float((modulate_logits(z, modulation, noise=SeededNoise(s)).argmax(1) == clean).double().mean())
        for s in range(seeds)
    ]
    return sum(runs) / seeds


def test_calibrated_tiers_hold_on_held_out_logits_from_the_same_model() -> None:
    z, _ = classifier_logits(8000, 10, seed=1)
    calibration, held_out = z[:4000], z[4000:]
    tiers = calibrate_logits(calibration, {"premium": 1.0, "standard": 0.9, "free": 0.5})
    assert tiers[0].sigma == 0.0
    assert tiers[1].sigma < tiers[2].sigma
    for t in tiers[1:]:
        assert t.predicted == pytest.approx(t.target, abs=1e-4)
        assert t.low < t.target < t.high
        assert abs(_agreement(held_out, Modulation(sigma=t.sigma)) - t.target) < 0.015


def test_intervals_count_images_not_pixels_when_grouped() -> None:
    values = torch.cat([torch.full((100,), 0.2), torch.full((100,), 0.9)])
    groups = torch.arange(2).repeat_interleave(100)
    mean, low, high = interval(values, groups)
    assert mean == pytest.approx(0.55)
    assert high - low > 0.5 > interval(values)[2] - interval(values)[1]


def test_focus_effect_matches_a_monte_carlo_measurement() -> None:
    z, _ = classifier_logits(4000, 10, seed=2)
    effect = focus_effect(z, 1.5, {4: 3.0})
    others = z.argmax(1) != 4
    measured = []
    for s in range(4):
        out = modulate_logits(z, Modulation(sigma=1.5, focus={4: 3.0}), noise=SeededNoise(s)).argmax(1)
        measured.append(float((out[others] == z.argmax(1)[others]).double().mean()))
    assert effect["others_with"] == pytest.approx(sum(measured) / 4, abs=0.01)
    assert effect["others_with"] < effect["others_without"]
    tiers = calibrate_logits(z, {"standard": 0.8}, focus={4: 3.0})  # the theory holds a tier under focus
    assert _mean_with_focus(z, tiers[0].sigma) == pytest.approx(0.8, abs=0.015)


def _mean_with_focus(z: torch.Tensor, sigma: float) -> float:
    return _agreement(z, Modulation(sigma=sigma, focus={4: 3.0}))


def test_aimod_calibrate_writes_a_tiers_file_for_resnet_fashion(tmp_path: Path) -> None:
    out = tmp_path / "tiers.toml"
    args = ["calibrate", "--model", "resnet-fashion", "--tier", "free=0.5", "--tier", "standard=0.9", "--out", str(out)]
    result = CliRunner().invoke(cli, [*args, "--samples", "1000"])
    assert result.exit_code == 0, result.output
    tiers = load_tiers(out)
    assert tiers.model == "resnet-fashion"
    assert tiers.samples == 1000
    assert tiers.num_classes == 10
    assert [t.name for t in tiers.tiers] == ["free", "standard"]
    assert tiers.tier("free").sigma > tiers.tier("standard").sigma > 0
    assert tiers.weights_sha256 == RESNET_FASHION_SHA256  # the committed weights, unchanged
    assert "free" in result.output


RESNET_FASHION_SHA256 = "sha256:e791dccbe54b6840a9b010833ac61231f8b7f39a04f12a7413445aad19753472"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tier", "free=0.05"], "(1/K, 1]"),
        (["--tier", "free=0.5", "--tier", "standard=0.9", "--tier", "basic=0.7"], "strictly increasing"),
        (["--tier", "free"], "NAME=TARGET"),
    ],
)
def test_aimod_calibrate_rejects_bad_targets(args: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["calibrate", "--model", "resnet-fashion", *args, "--out", str(tmp_path / "t.toml")]
    )
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "t.toml").exists()


def test_aimod_calibrate_rejects_unknown_models() -> None:
    result = CliRunner().invoke(cli, ["calibrate", "--model", "resnet-99", "--tier", "free=0.5"])
    assert result.exit_code == 2
    assert "resnet-99" in result.output


def test_aimod_calibrate_checks_the_output_path_before_calibrating(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    result = CliRunner().invoke(
        cli,
        ["calibrate", "--model", "resnet-fashion", "--tier", "free=0.5", "--out", str(tmp_path / "afile" / "t.toml")],
    )
    assert result.exit_code == 2
    assert "must be a file path" in result.output


def test_a_target_of_one_under_focus_is_checked_not_assumed() -> None:
    from aimod.errors import InvalidTargetError

    z, _ = classifier_logits(2000, 10, seed=0)
    with pytest.raises(InvalidTargetError):
        calibrate_logits(z, {"premium": 1.0, "free": 0.5}, focus={3: 4.0})


def test_tiers_calibrated_under_a_servers_field_hold_for_that_secret_on_held_out_images() -> None:
    """A field correlates the noise of similar inputs: one secret's agreement scatters around the theory, and
    measuring under that secret's field puts the tier on target for inputs like the calibration ones."""
    from aimod import FieldNoise
    from aimod.calibrate.inputs import logit_rows
    from aimod.calibrate.vision import _agreement_under
    from aimod.catalog import load

    loaded = load("resnet-fashion")
    calibration = logit_rows(loaded, "calibration", None).logits
    held_out = logit_rows(loaded, "held-out", None).logits
    noise = FieldNoise("calibration field secret 0123456789")
    tiers = calibrate_logits(calibration, {"basic": 0.7, "free": 0.5}, noise=noise)
    for tier in tiers:
        assert tier.predicted == pytest.approx(tier.target, abs=0.003)  # measured under the field, on these inputs
        measured = float(_agreement_under(held_out, Modulation(sigma=tier.sigma), noise, None).mean())
        assert abs(measured - tier.target) < 0.025


def test_aimod_calibrate_under_a_server_config_binds_the_file_to_its_noise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aimod.catalog import load
    from aimod.errors import ConfigError
    from aimod.server import build
    from aimod.server.config import hash_key, load_config

    server = tmp_path / "server.toml"
    server.write_text(
        '[model]\nname = "resnet-fashion"\n[tiers]\nfile = "tiers.toml"\n[[tenants]]\nname = "a"\ntier = "free"\n'
        f'key_sha256 = "{hash_key("a-long-api-key-0123456789")}"\n'
    )
    monkeypatch.setenv("AIMOD_SECRET", "the server's own secret 0123456789")
    args = ["calibrate", "--model", "resnet-fashion", "--tier", "free=0.5", "--samples", "1000"]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "tiers.toml"), "--server-config", str(server)])
    assert result.exit_code == 0, result.output
    tiers = load_tiers(tmp_path / "tiers.toml")
    assert tiers.extra["noise"].startswith("field:")
    assert "measured under the server's field" in tiers.method
    assert "0123456789" not in (tmp_path / "tiers.toml").read_text()  # the secret is not in the file
    fashion = load("resnet-fashion")
    config = load_config(server)
    assert build(config, "the server's own secret 0123456789", loaded=fashion).tiers["free"] == tiers.tier("free").sigma
    with pytest.raises(ConfigError, match="calibrated under another noise"):
        build(config, "another secret 0123456789abcdef", loaded=fashion)
    wrong = CliRunner().invoke(cli, ["calibrate", "--model", "segformer-scenes", "--server-config", str(server)])
    assert wrong.exit_code != 0
    assert "serves 'resnet-fashion'" in wrong.output
