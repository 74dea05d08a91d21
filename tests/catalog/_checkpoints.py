"""Tiny transformers checkpoints written from configs into a folder: real loaders, no hub, seeded."""

from __future__ import annotations

from pathlib import Path

import torch


def vit_classifier(folder: Path) -> Path:
    """A 3-class ViT image classifier whose processor crops (crop_pct-like resize) and rescales its own way."""
    import transformers

    torch.manual_seed(0)
    config = transformers.ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
        id2label={0: "cat", 1: "dog", 2: "bird"},
        label2id={"cat": 0, "dog": 1, "bird": 2},
    )
    transformers.ViTForImageClassification(config).save_pretrained(folder)
    processor = transformers.ViTImageProcessorPil(
        size={"height": 32, "width": 32}, resample=0, image_mean=[0.2, 0.4, 0.6], image_std=[0.3, 0.3, 0.3]
    )
    processor.save_pretrained(folder)
    return folder


def segformer_segmenter(folder: Path) -> Path:
    """A 4-class SegFormer semantic segmenter."""
    import transformers

    torch.manual_seed(0)
    config = transformers.SegformerConfig(
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[8, 16],
        patch_sizes=[7, 3],
        strides=[4, 2],
        num_attention_heads=[1, 2],
        decoder_hidden_size=16,
        num_labels=4,
        id2label={i: f"class {i}" for i in range(4)},
        label2id={f"class {i}": i for i in range(4)},
        architectures=["SegformerForSemanticSegmentation"],
    )
    transformers.SegformerForSemanticSegmentation(config).save_pretrained(folder)
    transformers.SegformerImageProcessorPil(size={"height": 64, "width": 64}).save_pretrained(folder)
    return folder


def gpt2_causal_lm(folder: Path) -> Path:
    """A tiny GPT-2 (``GPT2LMHeadModel``: no ``...ForCausalLM`` suffix) with a byte-level BPE tokenizer."""
    import transformers

    from tests.text._models import bpe_tokenizer

    tokenizer = bpe_tokenizer()
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=2,
        pad_token_id=0,
        bos_token_id=0,
        eos_token_id=0,
    )
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
