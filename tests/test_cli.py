from __future__ import annotations

from click.testing import CliRunner

from aimod.cli import cli


def test_version_and_help() -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["--version"]).output.startswith("aimod, version")
    assert "demo" in runner.invoke(cli, ["--help"]).output


def test_bad_options_are_usage_errors() -> None:
    result = CliRunner().invoke(cli, ["sweep", "--seeds", "0"])
    assert result.exit_code == 2
    assert "1<=x<=100" in result.output
