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
