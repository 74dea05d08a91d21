"""Row keys for keyed noise: a stable 64-bit digest of each input row.

``digest`` turns inputs into one int64 key per row. The same row always gives the same key, on any
device and in any batch, across processes and versions of aimod (the algorithm is part of the API):

1. Each row becomes a sequence of 64-bit words: integer and bool elements by value (so token ids,
   ``bytes`` and a ``uint8`` tensor of the same values agree), floating elements by their IEEE bit pattern
   (float32 through ``int32``, float16/bfloat16 through ``int16``, float64 through ``int64``).
2. Word ``w_i`` at position ``i`` contributes ``mix64(w_i ^ mix64(i·G + tag))``; the contributions are
   summed modulo 2^64 (``tag`` separates integer from each floating dtype; ``G`` is the golden-ratio step).
3. The key is ``mix64(sum + mix64(length ^ tag))``.

Because step 2 is a sum, a prefix's state can be extended one token at a time (:func:`extend_state`),
which is how language-model rows get a key per decoding step without rehashing the prompt.
``mix64`` is the SplitMix64 finaliser: fast and well mixed, but not cryptographic. The owner's secret is
mixed in later, by :class:`aimod.KeyedNoise`, so knowing a key tells nothing about the noise.

Example:
    >>> digest([b"abc"]).tolist() == digest(torch.tensor([[97, 98, 99]], dtype=torch.uint8)).tolist()
    True
    >>> k = digest(torch.zeros(2, 3, 4))
    >>> k.shape, k.dtype, bool(k[0] == k[1])
    (torch.Size([2]), torch.int64, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import torch
from torch import Tensor

from aimod._hash import GOLDEN, mix64, signed64
from aimod.errors import InvalidArgumentError

__all__ = ["digest", "digest_state", "extend_state", "finalize_state", "token_contributions"]

_TAGS = {
    "int": signed64(0x243F6A8885A308D3),
    torch.float16: signed64(0x13198A2E03707344),
    torch.bfloat16: signed64(0xA4093822299F31D0),
    torch.float32: signed64(0x082EFA98EC4E6C89),
    torch.float64: signed64(0x452821E638D01377),
}
_VIEWS = {
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
    torch.float32: torch.int32,
    torch.float64: torch.int64,
}
# float8 formats hash by their bits too (a cast to int64 would truncate 0.1 and 0.3 to the same 0)
for _i, _name in enumerate(("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")):
    if hasattr(torch, _name):
        _VIEWS[getattr(torch, _name)] = torch.int8
        _TAGS[getattr(torch, _name)] = signed64(0xBE5466CF34E90C6C + _i)

Row = Union[bytes, bytearray, str, Sequence[int], Tensor]
"""One row for :func:`digest`."""


def _words(rows: Tensor) -> tuple[Tensor, int]:
    """(B, ...) tensor -> (B, L) int64 words and the dtype tag."""
    flat = rows.reshape(rows.shape[0], -1)
    if flat.dtype in _VIEWS:
        return flat.contiguous().view(_VIEWS[flat.dtype]).to(torch.int64), _TAGS[flat.dtype]
    if flat.dtype.is_complex:
        raise InvalidArgumentError("data", f"a {flat.dtype} tensor", "a real, integer or bool tensor")
    return flat.to(torch.int64), _TAGS["int"]


def _contributions(words: Tensor, positions: Tensor, tag: int) -> Tensor:
    """Step 2's term ``mix64(w ^ mix64(pos·G + tag))`` of int64 words at 0-based positions (broadcast)."""
    keys = mix64(positions.to(torch.int64).mul(GOLDEN).add_(tag))
    return mix64(words ^ keys)


def digest_state(rows: Tensor) -> Tensor:
    """The summed contributions of each row (step 2 above), shape ``(B,)``; see :func:`finalize_state`."""
    words, tag = _words(rows)
    positions = torch.arange(words.shape[1], device=words.device)
    return _contributions(words, positions, tag).sum(dim=1)


def token_contributions(tokens: Tensor, positions: Tensor) -> Tensor:
    """Step 2's term of integer tokens at (per-element) 0-based positions, for prefix digests."""
    return _contributions(tokens.to(torch.int64), positions, _TAGS["int"])


def extend_state(state: Tensor, tokens: Tensor, position: int | Tensor) -> Tensor:
    """Adds one integer token per row at ``position`` (0-based; an int or one per row) to a digest state.

    Example:
        >>> ids = torch.tensor([[5, 6, 7]])
        >>> s = extend_state(digest_state(ids[:, :2]), ids[:, 2], 2)
        >>> bool(finalize_state(s, 3) == digest(ids))
        True
    """
    positions = torch.as_tensor(position, dtype=torch.int64, device=state.device).expand_as(state)
    return state + token_contributions(tokens, positions)


def finalize_state(state: Tensor, length: int | Tensor, *, dtype: torch.dtype | None = None) -> Tensor:
    """Turns a digest state of rows of ``length`` words into keys (step 3 above).

    ``length`` may be a tensor of per-row lengths. Integer rows are assumed unless ``dtype`` names a
    floating dtype.
    """
    tag = _TAGS[dtype] if dtype in _VIEWS else _TAGS["int"]
    lengths = torch.as_tensor(length, dtype=torch.int64, device=state.device).expand_as(state).clone()
    return mix64(state + mix64(lengths ^ tag))


def digest(data: Tensor | Row | Sequence[Row]) -> Tensor:
    """One int64 key per row of ``data``, shape ``(B,)``.

    Args:
        data: A tensor whose first dim is the batch (``(B, ...)``; each row is everything after it), or a
            single ``bytes``/``str`` (one row), or a sequence of rows, each ``bytes``, ``str`` (UTF-8), a
            sequence of ints (token ids) or a tensor. To digest one token sequence, wrap it: ``digest([ids])``.

    Returns:
        int64 keys on the input's device (CPU for Python inputs).

    Raises:
        InvalidArgumentError: For other types, empty batches, or a 0-d tensor.
    """
    if isinstance(data, Tensor):
        if data.ndim == 0 or data.shape[0] == 0:
            raise InvalidArgumentError(
                "data", f"a tensor of shape {tuple(data.shape)}", "a tensor with a non-empty first (batch) dim"
            )
        length = data[0].numel()
        return finalize_state(digest_state(data), length, dtype=data.dtype)
    if isinstance(data, (bytes, bytearray, str)):
        return digest([data])
    if not isinstance(data, Sequence) or len(data) == 0:
        raise InvalidArgumentError(
            "data",
            data,
            "a tensor (B, ...), bytes, str, or a non-empty sequence of rows",
            "For token ids use digest([ids]).",
        )
    keys = [digest(_row_tensor(row))[0] for row in data]
    return torch.stack(keys)


def _row_tensor(row: object) -> Tensor:
    if isinstance(row, str):
        row = row.encode("utf-8")
    if isinstance(row, (bytes, bytearray)):
        return (
            torch.frombuffer(bytearray(row), dtype=torch.uint8)[None] if row else torch.zeros(1, 0, dtype=torch.uint8)
        )
    if isinstance(row, Tensor):
        return row.reshape(1, -1)
    if isinstance(row, Sequence) and all(isinstance(v, int) and not isinstance(v, bool) for v in row):
        return torch.tensor(list(row), dtype=torch.int64).reshape(1, -1)
    raise InvalidArgumentError(
        "row",
        row,
        "bytes, str, a sequence of ints (token ids) or a tensor",
        "To digest one token sequence, wrap it in a list: digest([token_ids]).",
    )
