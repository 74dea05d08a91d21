from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

from aimod import InvalidArgumentError
from aimod.eval.harness import AimodLM, _secret, parse_focus, write_tasks


def test_parse_focus_reads_words_and_token_ids_and_refuses_duplicates() -> None:
    assert parse_focus("paris:3; 1234:-1.5") == {"paris": 3.0, 1234: -1.5}
    assert parse_focus(None) == {}
    for bad in ("paris", "paris:x", ":3", "paris:3;paris:2"):
        with pytest.raises(InvalidArgumentError, match="focus"):
            parse_focus(bad)


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
    lm = AimodLM(pretrained=f"hf:{folder}", sigma=1.0, batch_size=1)
    assert type(lm.model).__name__ == "GPT2LMHeadModel"
    assert not lm.modulation.is_identity
