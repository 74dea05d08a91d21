from __future__ import annotations

import pytest
import torch

from aimod import InvalidArgumentError, KeyedNoise
from aimod.text import generate
from aimod.text.padding import encode_left_padded, eos_ids, left_pad, pad_id
from tests.text._models import bpe_tokenizer, tiny_llama

pytest.importorskip("transformers")


def test_left_pad_matches_the_tokenizers_own_left_padding() -> None:
    tokenizer = bpe_tokenizer()
    texts = ["Paris is the capital of France.", "Rome", "Iron has the chemical symbol Fe."]
    tokenizer.padding_side = "left"
    own = tokenizer(texts, return_tensors="pt", padding=True)
    tokenizer.padding_side = "right"
    ids, mask = encode_left_padded(tokenizer, texts, add_special_tokens=True)
    assert torch.equal(ids, own["input_ids"])
    assert torch.equal(mask, own["attention_mask"])
    assert tokenizer.padding_side == "right"  # the tokenizer's settings are untouched


def test_pad_and_eos_tokens_fall_back_like_generate() -> None:
    tokenizer = bpe_tokenizer()
    assert pad_id(tokenizer) == tokenizer.pad_token_id
    tokenizer.pad_token = None
    tokenizer.eos_token = "<pad>"
    assert pad_id(tokenizer) == tokenizer.eos_token_id
    tokenizer.eos_token = None
    with pytest.raises(InvalidArgumentError, match="neither a pad nor an eos"):
        pad_id(tokenizer)
    model = tiny_llama(len(bpe_tokenizer()), 0)
    model.generation_config.eos_token_id = [3, 4]
    assert eos_ids(model, bpe_tokenizer()) == {3, 4}


def test_a_padded_row_decodes_as_it_does_alone() -> None:
    tokenizer = bpe_tokenizer()
    model = tiny_llama(len(tokenizer), int(tokenizer.pad_token_id))
    prompts = ["Paris is the capital of", "Iron"]
    together = generate(model, tokenizer, prompts, "sigma=0.5", noise=KeyedNoise("pad"), max_new_tokens=5, batch_size=2)
    alone = [
        generate(model, tokenizer, [p], "sigma=0.5", noise=KeyedNoise("pad"), max_new_tokens=5)[0] for p in prompts
    ]
    assert together == alone
    ids, mask = left_pad([[5, 6, 7], []], pad=9)
    assert ids.tolist() == [[5, 6, 7], [9, 9, 9]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 0]]
