"""Noise sources: where every random number aimod adds comes from.

Both sources are counter-based: a standard normal is a pure function of
``(row seed, stream, position in the row, class index)``, computed with integer hashing in torch ops
(:mod:`aimod._hash`). So a row's noise never depends on the rest of the batch or its order, the same
inputs give the same numbers on CPU and CUDA (the final float32 ``erfinv`` may differ by rounding), and no
global random state is touched.

* :class:`KeyedNoise` ``(secret)``: the row seed comes from the secret and a caller-supplied row key
  (usually :func:`aimod.digest` of the input), so the same query always gets the same noise. Its utility noise
  is nested across σ (:mod:`aimod.chain`): the noise at a larger σ is the noise at a smaller σ plus an
  independent increment, so answers from several tiers reveal no more than the best of them.
* :class:`SeededNoise` ``(seed)``: reproducible runs. Each call draws fresh noise (the rows are keyed by a
  call counter and their index); building a new ``SeededNoise(seed)`` replays the same sequence. Given
  explicit ``keys`` its rows are keyed like ``KeyedNoise``'s with the seed as the secret. Its utility noise is
  ``σ·ε`` with one normal per logit (the fast path for sweeps, where nothing is served at several tiers).

A source's :meth:`~NoiseSource.utility` turns each row's σ into the utility noise the operator adds; focus
noise always comes from :func:`normals_at` on the row seeds.

How a normal is made: the row seed is mixed with the stream (utility or focus) and the position; the
class index ``c`` selects counter ``c // 2`` of that position; one 64-bit hash gives two 24-bit uniforms
(bits 8–31 for even ``c``, bits 40–63 for odd ``c``), each mapped to ``u = (2k + 1) / 2^24 - 1`` in (-1, 1)
and to ``sqrt(2)·erfinv(u)``. The normals are therefore quantised to 2^24 levels and bounded by ±5.42
(the probability of a larger standard normal is 6e-8); nothing else about them differs from N(0, 1).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import sys
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from aimod._hash import GOLDEN, mix64, signed64
from aimod.errors import InvalidArgumentError, InvalidKeysError

__all__ = [
    "FOCUS_STREAM",
    "UTILITY_STREAM",
    "KeyedNoise",
    "NoiseSource",
    "SeededNoise",
    "normal_bound",
    "normals",
    "normals_at",
]

UTILITY_STREAM = signed64(0x5851F42D4C957F2D)
"""Stream tag of the zero-mean utility noise."""
FOCUS_STREAM = signed64(0x14057B7EF767814F)
"""Stream tag of the half-normal focus noise (independent of the utility stream)."""

_MASK24 = (1 << 24) - 1
_SQRT2 = math.sqrt(2.0)
_LITTLE_ENDIAN = sys.byteorder == "little"


@runtime_checkable
class NoiseSource(Protocol):
    """Where modulation noise comes from. :class:`SeededNoise` and :class:`KeyedNoise` implement it."""

    def row_seeds(self, batch_size: int, keys: Tensor | None, device: torch.device) -> Tensor:
        """One int64 seed per row, shape ``(batch_size,)``, on ``device``; every draw derives from them."""
        ...

    def utility(self, clean: Tensor, sigma: Tensor, row_seeds: Tensor) -> Tensor:
        """The utility noise to add: float32 ``(B, P, C)``, each element ``N(0, sigma[b]²)``.

        Args:
            clean: ``(B, P, C)`` clean logits (rows, positions, classes); sources that key on content read them.
            sigma: ``(B,)`` float32 utility std per row (0 for rows without utility noise).
            row_seeds: ``(B,)`` from :meth:`row_seeds`.
        """
        ...


def _key_words(material: bytes, person: bytes) -> tuple[int, int]:
    digest = hashlib.blake2b(material, digest_size=16, person=person).digest()
    return (
        signed64(int.from_bytes(digest[:8], "little")),
        signed64(int.from_bytes(digest[8:], "little")),
    )


def _seeds_from_keys(keys: Tensor, words: tuple[int, int]) -> Tensor:
    seeds = mix64(keys.to(torch.int64) ^ words[0])
    seeds.add_(words[1])
    return mix64(seeds)


def _check_keys(keys: Tensor | None, batch_size: int, source: str) -> Tensor:
    if keys is None:
        raise InvalidKeysError(
            "keys",
            None,
            f"a tensor of {batch_size} int64 row keys for {source}",
            "Pass keys=aimod.digest(inputs) so the same input always gets the same noise.",
        )
    if not isinstance(keys, Tensor) or keys.dtype != torch.int64 or keys.shape != (batch_size,):
        shown = f"tensor of dtype {keys.dtype} and shape {tuple(keys.shape)}" if isinstance(keys, Tensor) else keys
        raise InvalidKeysError(
            "keys", shown, f"an int64 tensor of shape ({batch_size},), one key per row", "Use aimod.digest(...)."
        )
    return keys


class KeyedNoise:
    """Noise that is a pure function of (secret, row key, position, class): same query, same answer.

    Args:
        secret: The owner's secret (str or bytes, at least 16 bytes recommended). It is hashed once
            (BLAKE2b) and never stored or shown.

    Example:
        >>> noise = KeyedNoise("a long owner secret, kept safe")
        >>> keys = torch.tensor([7, 7], dtype=torch.int64)
        >>> s = noise.row_seeds(2, keys, torch.device("cpu"))
        >>> bool(s[0] == s[1])
        True
    """

    def __init__(self, secret: str | bytes) -> None:
        if isinstance(secret, str):
            secret = secret.encode()
        if not isinstance(secret, (bytes, bytearray)) or len(secret) == 0:
            raise InvalidArgumentError(
                "secret",
                "<hidden>",
                "a non-empty str or bytes",
                "Use a long random string, e.g. from secrets.token_hex(32).",
            )
        self._words = _key_words(bytes(secret), b"aimod-keyed-v1")

    def __repr__(self) -> str:
        return "KeyedNoise(secret=<hidden>)"

    def row_seeds(self, batch_size: int, keys: Tensor | None, device: torch.device) -> Tensor:
        """Seeds from the secret and the caller's row keys (required)."""
        keys = _check_keys(keys, batch_size, "KeyedNoise")
        return _seeds_from_keys(keys.to(device), self._words)

    def utility(self, clean: Tensor, sigma: Tensor, row_seeds: Tensor) -> Tensor:
        """Nested noise: the keyed Brownian path of each logit at ``σ²`` (:func:`aimod.chain.brownian`)."""
        from aimod.chain import brownian

        return brownian(row_seeds, clean.shape[1], clean.shape[2], sigma.to(torch.float64).square())


class SeededNoise:
    """Reproducible noise from an integer seed; each call draws fresh noise.

    Args:
        seed: Any int. ``SeededNoise(s)`` replays the same sequence of draws.

    Example:
        >>> a, b = SeededNoise(0), SeededNoise(0)
        >>> cpu = torch.device("cpu")
        >>> bool((a.row_seeds(3, None, cpu) == b.row_seeds(3, None, cpu)).all())
        True
        >>> bool((a.row_seeds(3, None, cpu) == b.row_seeds(3, None, cpu).flip(0)).all())
        False
    """

    def __init__(self, seed: int) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InvalidArgumentError("seed", seed, "an int", "For example SeededNoise(0).")
        self.seed = seed
        self._words = _key_words(seed.to_bytes(32, "little", signed=True), b"aimod-seeded-v1")
        self._calls = itertools.count()

    def __repr__(self) -> str:
        return f"SeededNoise({self.seed})"

    def row_seeds(self, batch_size: int, keys: Tensor | None, device: torch.device) -> Tensor:
        """Seeds from the seed and a call counter, or from the seed and ``keys`` when given."""
        if keys is None:
            call = next(self._calls)
            keys = torch.arange(batch_size, dtype=torch.int64, device=device) + (call << 32)
            return _seeds_from_keys(keys, self._words)
        keys = _check_keys(keys, batch_size, "SeededNoise")
        return _seeds_from_keys(keys.to(device), self._words)

    def utility(self, clean: Tensor, sigma: Tensor, row_seeds: Tensor) -> Tensor:
        """``σ·ε``: one keyed standard normal per logit, scaled by each row's σ."""
        eps = normals(row_seeds, clean.shape[1], clean.shape[2], UTILITY_STREAM)
        return eps.mul_(sigma.to(eps.device)[:, None, None])


def _position_seeds(row_seeds: Tensor, num_positions: int, stream: int) -> Tensor:
    """(B,) row seeds -> (B, P) seeds, one per position of each row, for one stream."""
    stream_seeds = mix64(row_seeds ^ stream)
    steps = torch.arange(1, num_positions + 1, dtype=torch.int64, device=row_seeds.device).mul_(GOLDEN)
    return mix64(stream_seeds[:, None] + steps)


def _uniform24_to_normal(k: Tensor) -> Tensor:
    """Integer tensor of 24-bit values k -> float32 sqrt(2)·erfinv((2k+1)/2^24 - 1), a new tensor."""
    # k·2^-23 and the sum below are exact in float32, so u never reaches ±1.
    return k.to(torch.float32).mul_(2.0**-23).add_(2.0**-24 - 1.0).erfinv_().mul_(_SQRT2)


_EDGE = 1 << 12
"""How many of the 24-bit values at each end :func:`normal_bound` evaluates (the rest are below 4 in magnitude)."""
_BOUNDS: dict[str, float] = {}


def normal_bound(device: torch.device | str = "cpu") -> float:
    """The largest ``|normal|`` :func:`normals` and :func:`normals_at` can return on ``device`` (about 5.42).

    Taken from the float32 values actually produced at the extreme 24-bit inputs (the ``erfinv`` of a device may
    round differently), not from the real-number formula; computed once per device type.

    Example:
        >>> 5.4 < normal_bound() < 5.5
        True
        >>> k = torch.tensor([0, (1 << 24) - 1])
        >>> _uniform24_to_normal(k).abs().max().item() <= normal_bound()
        True
    """
    kind = torch.device(device).type
    if kind not in _BOUNDS:
        edge = torch.arange(_EDGE, dtype=torch.int64, device=device)
        k = torch.cat([edge, _MASK24 - edge])
        _BOUNDS[kind] = float(_uniform24_to_normal(k).abs().max())
    return _BOUNDS[kind]


def normals(row_seeds: Tensor, num_positions: int, num_classes: int, stream: int = UTILITY_STREAM) -> Tensor:
    """Standard normals for every (row, position, class): float32 of shape ``(B, P, C)``.

    Args:
        row_seeds: ``(B,)`` int64 from a :class:`NoiseSource`.
        num_positions: ``P``, positions per row (pixels for segmentation, 1 for classification).
        num_classes: ``C``.
        stream: Stream tag; different streams are independent.

    Example:
        >>> seeds = SeededNoise(0).row_seeds(2, None, torch.device("cpu"))
        >>> x = normals(seeds, 1, 5)
        >>> x.shape, x.dtype
        (torch.Size([2, 1, 5]), torch.float32)
        >>> torch.equal(normals(seeds, 1, 3), x[..., :3])   # class c's noise does not depend on C
        True
    """
    pos = _position_seeds(row_seeds, num_positions, stream)  # (B, P)
    half = (num_classes + 1) // 2
    steps = torch.arange(1, half + 1, dtype=torch.int64, device=pos.device).mul_(GOLDEN)
    words = mix64(pos[:, :, None] + steps)  # (B, P, half): one 64-bit hash per pair of classes
    if _LITTLE_ENDIAN:  # the two 32-bit halves of each word, low first: bits 8-31 and 40-63 in one pass
        k = torch.bitwise_right_shift(words.view(torch.int32), 8).bitwise_and_(_MASK24)
    else:  # pragma: no cover - no big-endian machine runs torch today
        k = torch.stack([torch.bitwise_right_shift(words, s).bitwise_and_(_MASK24) for s in (8, 40)], -1)
    flat = _uniform24_to_normal(k).view(*words.shape[:2], 2 * half)
    return flat if 2 * half == num_classes else flat[..., :num_classes].contiguous()


def normals_at(row_seeds: Tensor, num_positions: int, class_ids: Tensor, stream: int = FOCUS_STREAM) -> Tensor:
    """Standard normals at chosen classes: float32 of shape ``(B, P, F)``.

    Equal to ``normals(row_seeds, P, C, stream)[:, :, class_ids]`` row by row, without making the rest.

    Args:
        row_seeds: ``(B,)`` int64.
        num_positions: ``P``.
        class_ids: ``(B, F)`` int64 class indices per row.
        stream: Stream tag.
    """
    pos = _position_seeds(row_seeds, num_positions, stream)  # (B, P)
    steps, shifts = _class_terms(class_ids.to(torch.int64))
    return _normals_from_terms(pos[:, :, None], steps[:, None, :], shifts[:, None, :])  # (B, P, F)


def _class_terms(class_ids: Tensor) -> tuple[Tensor, Tensor]:
    """Per class id: the counter step of its pair of classes and the shift of its 24 bits in the pair's word."""
    steps = (torch.bitwise_right_shift(class_ids, 1) + 1).mul_(GOLDEN)
    return steps, torch.where(class_ids.bitwise_and(1).bool(), 40, 8)


def _normals_from_terms(position_seeds: Tensor, steps: Tensor, shifts: Tensor) -> Tensor:
    """The normals at positions seeded ``position_seeds`` of the classes of :func:`_class_terms` (broadcast)."""
    words = mix64(position_seeds + steps)
    return _uniform24_to_normal(torch.bitwise_right_shift(words, shifts).bitwise_and_(_MASK24))
