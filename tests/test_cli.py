from __future__ import annotations

import re

from click.testing import CliRunner

from aimod.cli import cli


def test_demo_quick_prints_every_section_with_measured_and_predicted_figures() -> None:
    result = CliRunner().invoke(cli, ["demo", "--quick"])
    assert result.exit_code == 0, result.output
    for section in (
        "1. Utility modulation",
        "2. A tier as a utility level",
        "3. Focus modulation",
        "4. Same query, same answer",
    ):
        assert section in result.output
    keyed = float(re.search(r"keyed noise \(aimod\):\s+([\d.]+) %", result.output).group(1))  # type: ignore[union-attr]
    fresh = float(re.search(r"fresh noise per query:\s+([\d.]+) %", result.output).group(1))  # type: ignore[union-attr]
    assert fresh > keyed + 15  # the majority vote undoes fresh noise, not keyed noise
    assert 40 <= keyed <= 60  # the 50 % tier holds


def test_version_and_help() -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["--version"]).output.startswith("aimod, version")
    assert "demo" in runner.invoke(cli, ["--help"]).output


def test_bad_options_are_usage_errors() -> None:
    result = CliRunner().invoke(cli, ["demo", "--samples", "3"])
    assert result.exit_code == 2
    assert "200" in result.output
