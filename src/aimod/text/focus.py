"""Token focus: turn words in a Modulation's focus into the token ids that begin them.

A language model decides one token at a time, so focusing a word means focusing the tokens a completion
would start that word with. For each word ``w`` the variants are ``w``, ``" " + w``, and the same two with the
first letter upper-cased (``"paris"`` -> ``paris``, `` paris``, ``Paris``, `` Paris``); each variant is
encoded without special tokens and its **first** token id is focused with the word's strength. Integer keys
are token ids and stay as they are. Two words that share a first token must agree on its strength.
"""

from __future__ import annotations

from typing import Any

from aimod.errors import InvalidModulationError
from aimod.modulation import ClassKey, Modulation

__all__ = ["expand_word", "token_focus"]


def expand_word(tokenizer: Any, word: str) -> list[int]:
    """The distinct first token ids of the word's variants (see the module docstring), in variant order.

    Raises:
        InvalidModulationError: If no variant encodes to any token.
    """
    capital = word[:1].upper() + word[1:]
    variants = dict.fromkeys([word, " " + word, capital, " " + capital])
    ids: list[int] = []
    for variant in variants:
        encoded = tokenizer.encode(variant, add_special_tokens=False)
        if encoded and encoded[0] not in ids:
            ids.append(int(encoded[0]))
    if not ids:
        raise InvalidModulationError("focus word", word, "a word the tokenizer can encode")
    return ids


def token_focus(tokenizer: Any, modulation: Modulation) -> Modulation:
    """A copy of ``modulation`` whose focus keys are all token ids.

    Args:
        tokenizer: A Hugging Face tokenizer (anything with ``encode(text, add_special_tokens=False)``).
        modulation: Focus keys may be words (str) or token ids (int).

    Raises:
        InvalidModulationError: If two keys give one token different strengths, or a word encodes to nothing.
    """
    focus: dict[ClassKey, float] = {}
    source: dict[int, object] = {}
    for key, strength in modulation.focus.items():
        ids = [key] if isinstance(key, int) else expand_word(tokenizer, key)
        for token in ids:
            if token in focus and focus[token] != strength:
                raise InvalidModulationError(
                    "focus",
                    dict(modulation.focus),
                    "words whose first tokens do not overlap with different strengths",
                    f"{source[token]!r} and {key!r} both start with token {token}; give them the same strength.",
                )
            focus[token] = strength
            source[token] = key
    return Modulation(sigma=modulation.sigma, focus=focus)
