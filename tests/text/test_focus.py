from __future__ import annotations

import pytest

from aimod import InvalidModulationError, Modulation
from aimod.text import expand_word, token_focus
from tests.text._models import bpe_tokenizer
from tests.text._models import tiny_llama as _tiny_llama

tokenizers = pytest.importorskip("tokenizers")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tokenizer() -> transformers.PreTrainedTokenizerFast:
    return bpe_tokenizer()


def test_a_word_expands_to_the_first_tokens_of_its_variants(tokenizer: object) -> None:
    ids = expand_word(tokenizer, "paris")
    expected = []
    for variant in ("paris", " paris", "Paris", " Paris"):
        first = tokenizer.encode(variant, add_special_tokens=False)[0]  # type: ignore[attr-defined]
        if first not in expected:
            expected.append(first)
    assert ids == expected
    assert len(ids) >= 3  # with and without the space, lower and upper case differ in byte-level BPE


def test_token_focus_keeps_ids_and_sigma(tokenizer: object) -> None:
    m = token_focus(tokenizer, Modulation(sigma=1.5, focus={"Rome": 2.0, 7: -1.0}))
    assert m.sigma == 1.5
    assert all(isinstance(k, int) for k in m.focus)
    assert m.focus[7] == -1.0
    assert {m.focus[i] for i in expand_word(tokenizer, "Rome")} == {2.0}


def test_conflicting_strengths_on_a_shared_first_token_raise(tokenizer: object) -> None:
    first = expand_word(tokenizer, "Paris")[0]
    with pytest.raises(InvalidModulationError, match="both start with token"):
        token_focus(tokenizer, Modulation(focus={"Paris": 2.0, first: -2.0}))


@pytest.fixture(scope="module")
def tiny_llama(tokenizer: transformers.PreTrainedTokenizerFast) -> transformers.LlamaForCausalLM:
    return _tiny_llama(len(tokenizer), tokenizer.pad_token_id)


def test_generate_is_batch_invariant_with_keyed_noise(tokenizer: object, tiny_llama: object) -> None:
    from aimod import KeyedNoise
    from aimod.text import generate

    prompts = ["The capital of Italy is", "Paris is", "Iron has the chemical symbol"]
    noise = KeyedNoise("generation test secret")
    together = generate(tiny_llama, tokenizer, prompts, "sigma=2", noise=noise, max_new_tokens=6, batch_size=3)
    one_by_one = [generate(tiny_llama, tokenizer, [p], "sigma=2", noise=noise, max_new_tokens=6)[0] for p in prompts]
    assert together == one_by_one
    assert all(isinstance(c, str) and c for c in together)


def test_generate_uses_the_chat_template_and_word_focus(
    tokenizer: transformers.PreTrainedTokenizerFast, tiny_llama: object
) -> None:
    from aimod import SeededNoise
    from aimod.text import generate

    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }} answer:{% endfor %}"
    try:
        out = generate(
            tiny_llama,
            tokenizer,
            ["capital of France"],
            "Paris=+60",
            noise=SeededNoise(0),
            max_new_tokens=4,
        )
    finally:
        tokenizer.chat_template = None
    # every generated token is a first token of a "Paris" variant: here "Paris" and the bare space that
    # starts " Paris" in this tiny tokenizer (real vocabularies have a single " Paris" token)
    assert "Paris" in out[0]
    assert out[0].replace("Paris", "").strip() == ""


def test_generate_rejects_bad_prompts(tokenizer: object, tiny_llama: object) -> None:
    from aimod import InvalidArgumentError, SeededNoise
    from aimod.text import generate

    with pytest.raises(InvalidArgumentError, match="non-empty"):
        generate(tiny_llama, tokenizer, ["ok", "  "], "sigma=1", noise=SeededNoise(0))
    with pytest.raises(InvalidArgumentError, match="one per prompt"):
        generate(tiny_llama, tokenizer, ["a", "b"], [Modulation()], noise=SeededNoise(0))
