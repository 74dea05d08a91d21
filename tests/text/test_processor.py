from __future__ import annotations

import pytest
import torch

import aimod
from aimod import InvalidArgumentError, KeyedNoise, Modulation, SeededNoise
from aimod.digest import finalize_state
from aimod.text import AimLogitsProcessor, prefix_digest
from tests.text._models import tiny_llama as _tiny_llama

transformers = pytest.importorskip("transformers")
PAD = 0
SECRET = "text test secret"


@pytest.fixture(scope="module")
def model() -> transformers.LlamaForCausalLM:
    """A tiny random Llama built from a config: real transformers generation, no files."""
    return _tiny_llama(64, PAD)


def _generate(model: transformers.LlamaForCausalLM, prompts: list[list[int]], processor: object) -> list[list[int]]:
    width = max(map(len, prompts))
    ids = torch.tensor([[PAD] * (width - len(p)) + p for p in prompts])
    mask = (torch.arange(width)[None, :] >= torch.tensor([width - len(p) for p in prompts])[:, None]).long()
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=12,
        do_sample=False,
        logits_processor=transformers.LogitsProcessorList([processor]),
        pad_token_id=PAD,
    )
    return out[:, width:].tolist()


def test_prefix_digest_ignores_left_padding_and_matches_digest() -> None:
    ids = torch.tensor([[0, 0, 9, 8, 7], [3, 9, 8, 7, 6]])
    state, length = prefix_digest(ids, PAD)
    keys = finalize_state(state, length)
    assert keys[0] == aimod.digest([[9, 8, 7]])[0]
    assert keys[1] == aimod.digest([[3, 9, 8, 7, 6]])[0]


def test_same_prompt_same_completion_alone_and_in_a_mixed_left_padded_batch(model: object) -> None:
    prompt = [5, 17, 23, 42]
    m = Modulation(sigma=3.0)
    alone = _generate(model, [prompt], AimLogitsProcessor(m, noise=KeyedNoise(SECRET), pad_token_id=PAD))[0]
    batch = _generate(
        model,
        [[7, 8], prompt, [9, 10, 11, 12, 13, 14, 15]],
        AimLogitsProcessor(m, noise=KeyedNoise(SECRET), pad_token_id=PAD),
    )
    assert batch[1] == alone
    clean = _generate(model, [prompt], AimLogitsProcessor(Modulation(), noise=KeyedNoise(SECRET)))[0]
    assert alone != clean  # sigma 3 changes a random tiny model's greedy output


def test_a_processor_reused_across_generate_calls_keys_each_prompt_afresh(model: object) -> None:
    m = Modulation(sigma=2.0)
    shared = AimLogitsProcessor(m, noise=KeyedNoise(SECRET), pad_token_id=PAD)
    first = _generate(model, [[5, 6, 7]], shared)[0]
    longer = [5, 6, 7, *first][:4]  # a prompt exactly one token longer than the last call's first step
    reused = _generate(model, [longer], shared)[0]
    fresh = _generate(model, [longer], AimLogitsProcessor(m, noise=KeyedNoise(SECRET), pad_token_id=PAD))[0]
    assert reused == fresh


def test_beam_search_keeps_the_same_prompt_same_answer(model: object) -> None:
    ids = torch.tensor([[5, 17, 23]])
    outs = []
    for _ in range(2):
        proc = AimLogitsProcessor(Modulation(sigma=2.0), noise=KeyedNoise(SECRET))
        outs.append(
            model.generate(
                input_ids=ids,
                max_new_tokens=8,
                num_beams=3,
                do_sample=False,
                pad_token_id=PAD,
                logits_processor=transformers.LogitsProcessorList([proc]),
            )
        )
    assert torch.equal(outs[0], outs[1])


def test_per_row_modulations_in_one_generate_call(model: object) -> None:
    prompts = [[5, 6, 7], [8, 9, 10]]
    tiers = [Modulation(), Modulation(sigma=3.0)]
    mixed = _generate(model, prompts, AimLogitsProcessor(tiers, noise=KeyedNoise(SECRET), pad_token_id=PAD))
    for prompt, tier, got in zip(prompts, tiers, mixed, strict=True):
        assert got == _generate(model, [prompt], AimLogitsProcessor(tier, noise=KeyedNoise(SECRET)))[0]


def test_token_focus_promotes_and_suppresses(model: object) -> None:
    promoted = _generate(model, [[5, 6]], AimLogitsProcessor(Modulation(focus={33: 50.0}), noise=SeededNoise(0)))
    assert promoted[0].count(33) >= 10
    free = _generate(model, [[5, 6]], AimLogitsProcessor(Modulation(), noise=SeededNoise(0)))[0]
    banned = free[0]
    suppressed = _generate(model, [[5, 6]], AimLogitsProcessor(Modulation(focus={banned: -50.0}), noise=SeededNoise(0)))
    assert banned not in suppressed[0]


def test_sampling_works_and_is_reproducible(model: object) -> None:
    ids = torch.tensor([[5, 6, 7]])
    outs = []
    for _ in range(2):
        torch.manual_seed(1)
        proc = AimLogitsProcessor(Modulation(sigma=1.0), noise=KeyedNoise(SECRET))
        outs.append(
            model.generate(
                input_ids=ids,
                max_new_tokens=8,
                do_sample=True,
                pad_token_id=PAD,
                logits_processor=transformers.LogitsProcessorList([proc]),
            )
        )
    assert torch.equal(outs[0], outs[1])


def test_bad_arguments_raise() -> None:
    with pytest.raises(InvalidArgumentError, match="token id"):
        AimLogitsProcessor(Modulation(focus={"Paris": 2.0}), noise=SeededNoise(0))
    with pytest.raises(InvalidArgumentError, match="noise source"):
        AimLogitsProcessor(Modulation(), noise="secret")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "modulation",
    [
        Modulation(focus={"paris": 2.0}),
        [Modulation(sigma=1.0), Modulation(focus={"paris": 2.0})],
        (Modulation(focus={3: 1.0, "london": -1.0}),),
    ],
    ids=["one", "per-row list", "per-row tuple"],
)
def test_word_focus_keys_are_refused_at_construction(modulation: object) -> None:
    with pytest.raises(InvalidArgumentError, match=r"token id .*aimod\.text\.focus\.token_focus"):
        AimLogitsProcessor(modulation, noise=SeededNoise(0))  # type: ignore[arg-type]
