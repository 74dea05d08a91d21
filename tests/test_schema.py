"""server.toml and the tiers file: one set of name and hash patterns, checked and reported the same way."""

from __future__ import annotations

from pathlib import Path

import pytest

import aimod._schema as schema
import aimod.calibrate.tiers as tiers_module
import aimod.server.config as config_module
from aimod.calibrate import Calibration, Tier, load_tiers, parse_tiers, save_tiers, validate
from aimod.errors import ConfigError, InvalidArgumentError
from aimod.server.config import hash_key, parse_config

WEIGHTS = "sha256:" + "ab" * 32


def _calibration(*names: str) -> Calibration:
    first, second = names or ("premium", "free")
    return Calibration(
        model="resnet-fashion",
        weights_sha256=WEIGHTS,
        num_classes=10,
        metric="agreement",
        method="theory",
        inputs="test images",
        samples=50,
        date="2026-12-01T00:00:00+00:00",
        tiers=(Tier(first, 1.0, 0.0, 1.0, 1.0, 1.0), Tier(second, 0.5, 6.2, 0.5, 0.49, 0.51)),
    )


def _server(tier: str = "free", sigma: object = 3.0, **extra: object) -> dict[str, object]:
    return {
        "model": {"name": "resnet-fashion"},
        "tiers": {"sigma": {"premium": 0.0, tier: sigma}},
        "tenants": [{"name": "acme", "tier": tier, "key_sha256": hash_key("a-key-of-sufficient-length")}],
        **extra,
    }


def _edited(tmp_path: Path, old: str, new: str) -> Path:
    path = save_tiers(_calibration(), tmp_path / "tiers.toml")
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


def test_both_files_use_the_same_pattern_objects() -> None:
    assert config_module.NAME is tiers_module.NAME is schema.NAME
    assert config_module.SHA256 is tiers_module.SHA256 is schema.SHA256
    assert config_module.Strict is tiers_module.Strict is schema.Strict
    for module in (config_module, tiers_module):
        assert not hasattr(module, "_NAME")
        assert not hasattr(module, "_HASH")


def test_a_tier_named_v1_0_is_valid_in_both_files(tmp_path: Path) -> None:
    config = parse_config(_server(tier="v1.0"))
    assert config.tenants[0].tier == "v1.0"
    assert parse_tiers(["premium=1.0", "v1.0=0.5"]) == {"premium": 1.0, "v1.0": 0.5}
    path = save_tiers(_calibration("premium", "v1.0"), tmp_path / "tiers.toml")
    assert '[tiers."v1.0"]' in path.read_text()
    assert load_tiers(path) == _calibration("premium", "v1.0")


def test_names_the_old_tiers_pattern_accepted_still_load(tmp_path: Path) -> None:
    path = save_tiers(_calibration("Premium-1", "free_tier"), tmp_path / "tiers.toml")
    assert load_tiers(path).tier("free_tier").sigma == 6.2


def test_a_string_sigma_is_refused_with_its_field_path(tmp_path: Path) -> None:
    path = _edited(tmp_path, "sigma = 6.2", 'sigma = "0.5"')
    with pytest.raises(ConfigError) as raised:
        load_tiers(path)
    assert raised.value.where == str(path)
    assert raised.value.field == "tiers.free.sigma"
    assert str(raised.value) == f"{path}: `tiers.free.sigma` must be a valid number (got '0.5')."
    assert isinstance(raised.value, InvalidArgumentError)  # what load_tiers raised before the schema
    with pytest.raises(ConfigError, match=r"`tiers\.sigma\.free` must be a valid number \(got '0\.5'\)"):
        parse_config(_server(sigma="0.5"))


def test_a_string_count_is_refused_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"`calibration\.samples` must be a valid integer \(got '50'\)"):
        load_tiers(_edited(tmp_path, "samples = 50", 'samples = "50"'))


def test_an_unknown_key_is_refused_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_tiers(_edited(tmp_path, "sigma = 6.2", "sigma = 6.2\nsgima = 6.2"))
    assert raised.value.field == "tiers.free.sgima"
    assert "an unknown field (remove it, or check its spelling against docs/calibration.md)" in str(raised.value)
    with pytest.raises(ConfigError) as raised:
        load_tiers(_edited(tmp_path, "[model]", "[model]\nversion = 2"))
    assert raised.value.field == "model.version"
    with pytest.raises(ConfigError) as raised:
        parse_config(_server(extra_table={"a": 1}))
    assert raised.value.field == "extra_table"
    assert "an unknown field (remove it, or check its spelling against docs/server.md)" in str(raised.value)


def test_a_bad_hash_gets_the_same_message_shape_in_both_files(tmp_path: Path) -> None:
    shape = r"`[a-z_.\[\]0-9]+_sha256` must be 'sha256:' and 64 lowercase hex digits \("
    with pytest.raises(ConfigError, match=shape) as tiers_error:
        load_tiers(_edited(tmp_path, WEIGHTS, "sha256:" + "AB" * 32))
    assert tiers_error.value.field == "model.weights_sha256"
    server = _server()
    server["tenants"][0]["key_sha256"] = "sha256:" + "AB" * 32  # type: ignore[index]
    with pytest.raises(ConfigError, match=shape) as server_error:
        parse_config(server)
    assert server_error.value.field == "tenants[0].key_sha256"


def test_validate_checks_a_calibration_with_the_same_schema() -> None:
    calibration = _calibration()
    bad = Calibration(**{**calibration.__dict__, "samples": "50"})
    with pytest.raises(ConfigError, match=r"^Calibration: `calibration\.samples` must be a valid integer"):
        validate(bad)
    twice = Calibration(**{**calibration.__dict__, "tiers": (calibration.tiers[1], calibration.tiers[1])})
    with pytest.raises(ConfigError, match=r"`tiers\.free` must be a tier name used once"):
        validate(twice)
    with pytest.raises(ConfigError, match=r"`tiers\.free\.sigma` must be a finite number"):
        validate(
            Calibration(
                **{
                    **calibration.__dict__,
                    "tiers": (calibration.tiers[0], Tier("free", 0.5, float("inf"), 0.5, 0.49, 0.51)),
                }
            )
        )
