"""server.toml: every invalid field stops start-up with its name; secrets; keys; the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from aimod.cli import cli
from aimod.errors import ConfigError, InvalidArgumentError
from aimod.server.config import DEV_SECRET, hash_key, load_config, parse_config, read_secret, tomllib
from aimod.server.policy import FocusPolicy
from aimod.server.tenants import Tenants

HASH = hash_key("a-key-of-sufficient-length")
GOOD = f"""
[model]
name = "resnet-fashion"
[tiers]
sigma = {{ premium = 0.0, free = 3 }}
[focus]
allowed = ["Bag"]
max_sigma = 2
[[tenants]]
name = "acme"
tier = "free"
key_sha256 = "{HASH}"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "server.toml"
    path.write_text(text)
    return path


def test_a_good_config_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.tiers.sigma == {"premium": 0.0, "free": 3.0}
    assert config.server.keying == "field"
    assert config.tenants[0].key_sha256 == HASH


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("[[tenants]]", "[[tenant]]"), "tenant"),
        (('tier = "free"', 'tier = "gold"'), "tenants[0].tier"),
        ((f'key_sha256 = "{HASH}"', 'key_sha256 = "my-plain-key"'), "tenants[0].key_sha256"),
        (("max_sigma = 2", "max_sigma = -1"), "focus.max_sigma"),
        (("max_sigma = 2", 'max_sigma = "big"'), "focus.max_sigma"),
        (("free = 3 }", "free = -3 }"), "tiers"),
        (('name = "acme"', 'name = "acme corp!"'), "tenants[0].name"),
        (("[focus]", "[server]\nport = 99999\n[focus]"), "server.port"),
        (("[focus]", '[server]\nkeying = "bytes"\n[focus]'), "server.keying"),
        (("[focus]", "[secret]\nenv = 'A'\nfile = 'b'\n[focus]"), "secret"),
        (('[model]\nname = "resnet-fashion"', "[model]"), "model.name"),
    ],
)
def test_each_invalid_field_is_named(tmp_path: Path, change: tuple[str, str], field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, GOOD.replace(*change)))
    assert f"`{field}" in str(raised.value)
    assert str(tmp_path / "server.toml") in str(raised.value)


def test_a_key_pasted_instead_of_its_hash_is_not_shown(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, GOOD.replace(HASH, "aimod-" + "ab" * 32)))
    assert "ab" * 32 not in str(raised.value)
    assert "`tenants[0].key_sha256`" in str(raised.value)


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[model\n"))
    with pytest.raises(InvalidArgumentError, match=r"existing server\.toml"):
        load_config(tmp_path / "missing.toml")


def test_duplicate_keys_are_refused() -> None:
    data = tomllib.loads(GOOD)
    data["tenants"].append({"name": "other", "tier": "free", "key_sha256": HASH})
    with pytest.raises(ConfigError, match=r"tenants\[1\]\.key_sha256 is also tenant 'acme'"):
        parse_config(data)


def test_a_tiers_file_of_another_model_stops_start_up(tmp_path: Path) -> None:
    from aimod.calibrate import Calibration, Tier, save_tiers
    from aimod.server import build

    calibration = Calibration(
        model="resnet-fashion",
        weights_sha256="sha256:" + "0" * 64,
        num_classes=10,
        metric="m",
        method="m",
        inputs="i",
        samples=10,
        date="2026-01-01T00:00:00+00:00",
        tiers=(Tier("premium", 1.0, 0.0, 1.0, 1.0, 1.0), Tier("free", 0.5, 3.0, 0.5, 0.45, 0.55)),
    )
    save_tiers(calibration, tmp_path / "tiers.toml")
    text = GOOD.replace("sigma = { premium = 0.0, free = 3 }", 'file = "tiers.toml"')
    config = load_config(write(tmp_path, text))
    with pytest.raises(ConfigError, match=r"tiers\.file.*weights_sha256"):
        build(config, "s" * 32)


def test_secret_from_env_or_file_and_never_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(write(tmp_path, GOOD))
    monkeypatch.delenv("AIMOD_SECRET", raising=False)
    with pytest.raises(InvalidArgumentError, match="--dev"):
        read_secret(config)
    assert read_secret(config, dev=True) == DEV_SECRET
    monkeypatch.setenv("AIMOD_SECRET", "short-secret")
    with pytest.raises(InvalidArgumentError) as raised:
        read_secret(config)
    assert "short-secret" not in str(raised.value)
    monkeypatch.setenv("AIMOD_SECRET", "x" * 20)
    assert read_secret(config) == "x" * 20
    (tmp_path / "secret").write_text("from-a-file-0123456789\n")
    filed = load_config(write(tmp_path, GOOD + '[secret]\nfile = "secret"\n'))
    assert read_secret(filed) == "from-a-file-0123456789"


def test_tenants_and_policy_without_a_server() -> None:
    config = parse_config(tomllib.loads(GOOD))
    tenants = Tenants(config.tenants, {"premium": 0.0, "free": 3.0})
    tenant = tenants.authenticate("Bearer a-key-of-sufficient-length")
    assert (tenant.name, tenant.sigma) == ("acme", 3.0)
    policy = FocusPolicy(config.focus, id2label=dict(enumerate(["Shirt", "Bag"])))
    assert policy.modulation(tenant, {"bag": -2.0}).focus == {1: -2.0}
    assert policy.modulation(tenant, None).sigma == 3.0


def test_new_key_prints_a_key_and_the_entry_that_accepts_it() -> None:
    result = CliRunner().invoke(cli, ["new-key", "--tenant", "acme", "--tier", "free"])
    assert result.exit_code == 0
    key = result.stderr.strip().rsplit(" ", 1)[-1]
    entry = tomllib.loads(result.stdout)["tenants"][0]
    assert entry == {"name": "acme", "tier": "free", "key_sha256": hash_key(key)}
    assert key not in result.stdout


def test_serve_refuses_to_start_without_a_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIMOD_SECRET", raising=False)
    done = CliRunner().invoke(cli, ["serve", "--config", str(write(tmp_path, GOOD))])
    assert done.exit_code == 2
    assert "secret" in done.output
    assert "--dev" in done.output
    bad = write(tmp_path, GOOD.replace('tier = "free"', 'tier = "gold"'))
    done = CliRunner().invoke(cli, ["serve", "--config", str(bad), "--dev"])
    assert done.exit_code == 2
    assert "tenants[0].tier" in done.output


def test_tiers_too_close_for_nested_noise_and_text_fingerprints_are_refused() -> None:
    from aimod.catalog import load
    from aimod.server import build
    from tests.server._serve import SECRET, config

    fashion = load("resnet-fashion")
    close = config("resnet-fashion", {"premium": 0.0, "free": 3.0, "bronze": 3.0001})
    with pytest.raises(ConfigError, match="too close for nested noise"):
        build(close, SECRET, loaded=fashion)
    with pytest.raises(ConfigError, match="keys images only"):
        build(config("smollm2-135m", {"premium": 0.0, "free": 3.0}, keying="fingerprint"), SECRET)


def test_a_tiers_file_schema_error_names_both_fields_and_the_tiers_file_once(tmp_path: Path) -> None:
    from aimod.calibrate import Calibration, Tier, save_tiers
    from aimod.server import build

    calibration = Calibration(
        model="resnet-fashion",
        weights_sha256="sha256:" + "0" * 64,
        num_classes=10,
        metric="m",
        method="m",
        inputs="i",
        samples=10,
        date="2026-01-01T00:00:00+00:00",
        tiers=(Tier("premium", 1.0, 0.0, 1.0, 1.0, 1.0), Tier("v1.0", 0.5, 3.0, 0.5, 0.45, 0.55)),
    )
    tiers = save_tiers(calibration, tmp_path / "tiers.toml")
    tiers.write_text(tiers.read_text().replace("sigma = 3.0", 'sigma = "3.0"'))
    text = GOOD.replace("sigma = { premium = 0.0, free = 3 }", 'file = "tiers.toml"').replace('"free"', '"v1.0"')
    config = load_config(write(tmp_path, text))
    with pytest.raises(ConfigError) as raised:
        build(config, "s" * 32)
    message = str(raised.value)
    assert raised.value.field == "tiers.file"
    assert "`tiers.v1.0.sigma` must be a valid number (got '3.0')" in message
    assert message.count(str(tiers)) == 1
