from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

from aimod import InvalidArgumentError, Modulation
from aimod.eval.harness import AimodLM, _secret, parse_modulation, write_tasks


def test_the_modulation_argument_is_the_one_string_form_with_semicolons() -> None:
    assert parse_modulation("sigma=2;paris=+3; 1234=-1.5") == Modulation(sigma=2, focus={"paris": 3, 1234: -1.5})
    assert parse_modulation("sigma=2;paris=+3") == Modulation.parse("sigma=2, paris=+3")
    assert parse_modulation(None) == Modulation()
    assert parse_modulation(2) == Modulation(sigma=2)  # lm-eval turns numeric values into numbers
    for bad in ("paris", "paris:3", "paris=3", "paris=+3;paris=+2"):
        with pytest.raises(InvalidArgumentError):
            parse_modulation(bad)


@pytest.mark.parametrize("old", [{"sigma": 2}, {"focus": "paris:3;london:-2"}])
def test_the_old_sigma_and_focus_arguments_are_refused_with_the_new_form(old: dict[str, object]) -> None:
    with pytest.raises(InvalidArgumentError, match="modulation=sigma=2;paris=") as info:
        AimodLM(**old)
    assert "string form" in str(info.value)


def test_secrets_never_come_from_model_arguments(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidArgumentError, match="AIMOD_SECRET") as error:
        AimodLM(pretrained="unused", secret="hunter2")
    assert "hunter2" not in str(error.value)
    monkeypatch.delenv("AIMOD_SECRET", raising=False)
    assert _secret(None, 3) == "aimod-lm-eval-public-seed-3"
    monkeypatch.setenv("AIMOD_SECRET", "from the environment")
    assert _secret(None, 0) == "from the environment"
    path = tmp_path / "secret.txt"  # type: ignore[operator]
    path.write_text("from a file\n")
    assert _secret(str(path), 0) == "from a file"
    with pytest.raises(InvalidArgumentError, match="readable file"):
        _secret(str(tmp_path / "missing"), 0)  # type: ignore[operator]


def test_write_tasks_builds_two_local_tasks(tmp_path: object) -> None:
    folder = write_tasks(tmp_path / "tasks", limit=5)  # type: ignore[operator]
    assert sorted(p.name for p in folder.iterdir()) == [
        "aimod_facts.jsonl", "aimod_facts_gen.yaml", "aimod_facts_mc.yaml", "utils.py",
    ]  # fmt: skip
    assert len((folder / "aimod_facts.jsonl").read_text().splitlines()) == 5
    assert "until: ['\\n']" in (folder / "aimod_facts_gen.yaml").read_text()


def test_pretrained_takes_catalog_names_and_refuses_vision_models(tmp_path: Path) -> None:
    from aimod.eval.harness import _pretrained
    from tests.catalog._checkpoints import gpt2_causal_lm

    folder = gpt2_causal_lm(tmp_path / "gpt2")
    assert _pretrained(f"hf:{folder}") == str(folder)
    assert _pretrained(str(folder)) == str(folder)  # lm-eval's own convention stays
    with pytest.raises(InvalidArgumentError, match="It is a classification model"):
        _pretrained("resnet-fashion")
    lm = AimodLM(pretrained=f"hf:{folder}", modulation="sigma=1", batch_size=1)
    assert type(lm.model).__name__ == "GPT2LMHeadModel"
    assert not lm.modulation.is_identity
