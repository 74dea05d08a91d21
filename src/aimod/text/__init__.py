"""Text: modulation of causal language models inside Hugging Face generation and log-likelihood scoring."""

from __future__ import annotations

from aimod.text.focus import expand_word, token_focus
from aimod.text.generation import Completions, format_prompts, generate, generate_grid
from aimod.text.processor import AimLogitsProcessor, prefix_digest, prefix_keys
from aimod.text.scoring import (
    ChoiceLogits,
    choice_logits,
    choice_loglikelihoods,
    modulate_sequence_logits,
    next_token_logits,
)

__all__ = [
    "AimLogitsProcessor",
    "ChoiceLogits",
    "Completions",
    "choice_logits",
    "choice_loglikelihoods",
    "expand_word",
    "format_prompts",
    "generate",
    "generate_grid",
    "modulate_sequence_logits",
    "next_token_logits",
    "prefix_digest",
    "prefix_keys",
    "token_focus",
]
