from __future__ import annotations

import pytest
import torch

import aimod
from aimod import KeyedNoise, Modulation, SeededNoise
from aimod.text import (
    AimLogitsProcessor,
    choice_logits,
    choice_loglikelihoods,
    generate,
    generate_grid,
    modulate_sequence_logits,
    prefix_keys,
)
from tests.text._models import bpe_tokenizer, tiny_llama

transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def tokenizer() -> object:
    return bpe_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer: object) -> object:
    return tiny_llama(len(tokenizer), tokenizer.pad_token_id)


def test_prefix_keys_are_the_digests_of_every_unpadded_prefix() -> None:
    ids = torch.tensor([[0, 0, 4, 5, 6], [7, 4, 5, 6, 8]])
    keys = prefix_keys(ids, pad_token_id=0)
    for t in range(2, 5):
        assert keys[0, t] == aimod.digest([ids[0, 2 : t + 1].tolist()])[0]
    for t in range(5):
        assert keys[1, t] == aimod.digest([ids[1, : t + 1].tolist()])[0]


def test_every_scored_position_gets_the_noise_generation_would_give_it() -> None:
    ids = torch.tensor([[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]])
    z = torch.randn(2, 5, 40)
    mods = [Modulation(sigma=2.0), Modulation(sigma=1.0, focus={7: 3.0})]
    for noise in (KeyedNoise("scoring"), SeededNoise(3)):
        out = modulate_sequence_logits(z, ids, mods, noise=noise)
        processor_noise = noise if isinstance(noise, KeyedNoise) else None
        for t in range(5):
            if processor_noise is not None:
                step = AimLogitsProcessor(mods, noise=processor_noise)(ids[:, : t + 1], z[:, t])
                assert torch.equal(out[:, t], step)
        # right padding after a position never changes it
        padded = modulate_sequence_logits(
            torch.cat([z, torch.randn(2, 3, 40)], 1),
            torch.cat([ids, torch.zeros(2, 3, dtype=torch.int64)], 1),
            mods,
            noise=noise,
        )
        assert torch.equal(padded[:, :5], out)
    with pytest.raises(aimod.InvalidArgumentError, match="shapes"):
        modulate_sequence_logits(z, ids[:, :3], mods[0], noise=KeyedNoise("k"))


def _reference_loglikelihood(model: object, tokenizer: object, context: str, choice: str) -> float:
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    cont = tokenizer(" " + choice, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits.double(), -1)[0]
    return float(sum(logprobs[len(ctx) + k - 1, tok] for k, tok in enumerate(cont)))


def test_choice_loglikelihoods_match_a_direct_computation_and_drop_under_noise(
    model: object, tokenizer: object
) -> None:
    contexts = ["The capital of France is", "Iron has the chemical symbol", "rome"]
    choices = [["Paris", "Rome", "Berlin"], ["Fe", "Paris"], ["and paris are cities; Berlin too.", "Iron"]]
    clean = choice_loglikelihoods(model, tokenizer, contexts, choices, Modulation(), noise=KeyedNoise("k"))
    assert clean.shape == (3, 3)
    assert clean[1, 2] == float("-inf")
    for i, options in enumerate(choices):
        for j, choice in enumerate(options):
            assert clean[i, j].item() == pytest.approx(
                _reference_loglikelihood(model, tokenizer, contexts[i], choice), abs=1e-4
            )
    assert len(tokenizer(" and paris are cities; Berlin too.")["input_ids"]) > 3  # later positions are scored
    scored = choice_logits(model, tokenizer, contexts, choices, batch_size=4)
    assert len(scored.logits) < len(scored.target)  # the shared first-token position is kept once
    noisy = scored.loglikelihoods(Modulation(sigma=3.0), noise=KeyedNoise("k"))
    assert torch.equal(noisy, scored.loglikelihoods(Modulation(sigma=3.0), noise=KeyedNoise("k")))
    assert not torch.allclose(noisy[:, :2], clean[:, :2])
    assert torch.equal(choice_logits(model, tokenizer, contexts, choices, batch_size=1).keys, scored.keys)


def test_a_grid_equals_separate_runs_and_shares_the_prefill(model: object, tokenizer: object) -> None:
    prompts = ["Paris is the capital of", "Iron has", "rome and"]
    mods = [Modulation(), Modulation(sigma=2.0), Modulation(sigma=4.0, focus={"Paris": 2.0})]
    noise = KeyedNoise("grid")
    grid = generate_grid(model, tokenizer, prompts, mods, noise=noise, max_new_tokens=6, batch_size=2, chat=False)
    assert [len(row) for row in grid.texts] == [3, 3, 3]
    for m, mod in enumerate(mods):
        alone = generate(model, tokenizer, prompts, mod, noise=noise, max_new_tokens=6, batch_size=1, chat=False)
        assert grid.texts[m] == alone
    assert grid.texts[0] != grid.texts[2]
    with pytest.raises(aimod.InvalidArgumentError, match="modulations"):
        generate_grid(model, tokenizer, prompts, [], noise=noise)


def test_beam_search_follows_each_row_s_modulation_in_generate_and_grid(model: object, tokenizer: object) -> None:
    prompts = ["Paris is", "Iron has the chemical"]
    noise = KeyedNoise("beams")
    together = generate(model, tokenizer, prompts, "sigma=2", noise=noise, max_new_tokens=5, chat=False, num_beams=2)
    alone = [
        generate(model, tokenizer, [p], "sigma=2", noise=noise, max_new_tokens=5, chat=False, num_beams=2)[0]
        for p in prompts
    ]
    assert together == alone
    grid = generate_grid(
        model, tokenizer, prompts, ["sigma=0", "sigma=2"], noise=noise, max_new_tokens=5, chat=False, num_beams=2
    )
    assert grid.texts[1] == together
    with pytest.raises(aimod.InvalidArgumentError, match="num_return_sequences"):
        generate(model, tokenizer, prompts, "sigma=2", noise=noise, chat=False, num_beams=2, num_return_sequences=2)


def test_choice_loglikelihoods_take_focus_words(model: object, tokenizer: object) -> None:
    contexts, choices = ["The capital of France is"], [["Paris", "Rome"]]
    plain = choice_loglikelihoods(model, tokenizer, contexts, choices, Modulation(), noise=KeyedNoise("k"))
    pushed = choice_loglikelihoods(
        model, tokenizer, contexts, choices, Modulation(focus={"Rome": 50.0}), noise=KeyedNoise("k")
    )
    assert pushed[0, 1] > plain[0, 1]


def test_long_sequences_are_modulated_in_chunks_with_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    import aimod.text.scoring as scoring

    ids, z = torch.randint(0, 30, (5, 7)), torch.randn(5, 7, 30)
    mods = [Modulation(sigma=1.0), Modulation(), Modulation(sigma=2.0, focus={3: 1.0}), Modulation(), Modulation()]
    whole = modulate_sequence_logits(z, ids, mods, noise=KeyedNoise("chunks"))
    monkeypatch.setattr(scoring, "_CHUNK", 7 * 30 * 2)  # two rows per call
    assert torch.equal(modulate_sequence_logits(z, ids, mods, noise=KeyedNoise("chunks")), whole)
    assert torch.equal(whole[1], z[1])
