from __future__ import annotations

from typing import Any

import torch


def tiny_llama(vocab_size: int, pad_token_id: int) -> Any:
    """A tiny random Llama built from a config: real transformers generation, no files, seeded."""
    import transformers

    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=pad_token_id,
    )
    return transformers.LlamaForCausalLM(config).eval()


CORPUS = [
    "Paris is the capital of France.",
    "The capital of Italy is Rome.",
    "paris and rome are cities; Berlin too.",
    "Iron has the chemical symbol Fe.",
] * 20


def bpe_tokenizer() -> Any:
    """A byte-level BPE (the GPT / Llama-3 kind, where ' Paris' and 'Paris' differ) trained here, offline."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>"]))
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>")
