r"""Utility noise as a smooth keyed random field of the clean logits: near-duplicates share their noise.

A key on the exact input (or on quantised logits) gives a fresh draw to every input that differs a little,
so a client who sends many slightly changed copies of one input can vote a tier away. :class:`FieldNoise`
makes the noise a smooth function of the query's clean logits instead:

    ε(z) = A·φ(z),   φ(z) = normalise(cos(Ω·x(z)/ℓ + b)),   x(z) = max(log_softmax(z), −clip)

with keyed standard normals ``A`` (``C x D``) and ``Ω`` (``D x C``), keyed uniform phases ``b`` and ``D`` random
Fourier features. Because ``φ`` has unit norm and the rows of ``A`` are independent, **every query's noise is
exactly N(0, I)** over its classes (the theory and calibration hold per query), while two queries get noise
correlated by ``φ(z)·φ(z') ≈ exp(−|x − x'|² / 2ℓ²)``: near-duplicates (pixel noise, shifts, re-encodings) get
almost the same noise and the same answer, with no boundary to step across; inputs whose clean distributions
differ by several ``ℓ`` get nearly independent noise.

Tiers stay nested (:mod:`aimod.chain`): ``A`` at variance ``t`` is a keyed Brownian motion in ``t`` per entry,
so a lower tier's noise is a higher tier's plus an independent field. ``A_t`` depends only on the secret and
``t``, so it is computed once per tier and cached (``D x C`` floats); a request then costs two small matrix
products per position.

For segmentation every pixel is a query of its own: its noise is the field at that pixel's clean logits, so a
shifted or re-encoded copy of a scene gives each piece of content the noise it had before (a key per image
would move with the pixel grid instead), and pixels with near-equal logits get near-equal noise.

The trade-off, measured by benchmarks/bench_tier_integrity.py: the larger ``ℓ``, the more variants share noise
(the attack gains less) and the more distinct inputs do too (an honest user's answers over a data set are
correlated, so its agreement scatters more around the theory from one secret to another). Focus noise is not
part of the field: it is keyed on the caller's row keys as with :class:`~aimod.KeyedNoise`.

Example:
    >>> import torch
    >>> from aimod import Modulation, modulate_logits
    >>> noise = FieldNoise("a long owner secret", scale=3.0, features=64)
    >>> z = torch.tensor([[4.0, 1.0, 0.5]])
    >>> keys = torch.tensor([0])
    >>> a = modulate_logits(z, Modulation(sigma=1.0), noise=noise, keys=keys)
    >>> b = modulate_logits(z + 1e-3, Modulation(sigma=1.0), noise=noise, keys=keys)
    >>> bool((a - b).abs().max() < 0.01)   # a near-duplicate: nearly the same noise
    True
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import Tensor

from aimod._hash import GOLDEN, mix64, signed64
from aimod.chain import brownian
from aimod.errors import InvalidArgumentError
from aimod.noise import KeyedNoise, _key_words, normals

__all__ = ["TEXT_CLIP", "TEXT_FEATURES", "FieldNoise"]

TEXT_CLIP = 5.0
"""The clip of language models' fields (:meth:`FieldNoise.for_text`)."""
TEXT_FEATURES = 64
"""The feature count of language models' fields."""

_OMEGA = signed64(0x2545F4914F6CDD1D)
_PHASE = signed64(0x27BB2EE687B0B0FD)
_AMPLITUDE = signed64(0x9FB21C651E98DF25)


class FieldNoise(KeyedNoise):
    """Keyed utility noise that is a smooth random field of each row's clean logits.

    Args:
        secret: The owner's secret (str or bytes); hashed once, never stored or shown.
        scale: ``ℓ``, the field's length scale in log-probability units: queries whose clipped log-softmax
            vectors differ by much less than ``ℓ`` share their noise.
        features: ``D``, the number of random Fourier features.
        clip: Log-probabilities below ``-clip`` count as ``-clip`` (classes or tokens that cannot matter).
        cache: How many ``(σ, C)`` amplitude tensors to keep (one per served tier and class count).

    Row keys (``keys=`` of :func:`aimod.modulate_logits`) are still required: they key the focus noise.
    """

    def __init__(
        self, secret: str | bytes, *, scale: float = 3.0, features: int = 256, clip: float = 30.0, cache: int = 16
    ) -> None:
        super().__init__(secret)
        for name, value in (("scale", scale), ("clip", clip)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise InvalidArgumentError(name, value, "a finite number > 0", "For example scale=3.0, clip=30.0.")
        for name, count in (("features", features), ("cache", cache)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise InvalidArgumentError(name, count, "an int >= 1", "For example features=256.")
        self.scale = float(scale)
        self.features = features
        self.clip = float(clip)
        self._field_words = _key_words(b"field" + self._words[0].to_bytes(8, "little", signed=True), b"aimod-field-v1")
        self._cache: OrderedDict[tuple[float, int, str], Tensor] = OrderedDict()
        self._cache_size = cache
        self._projection: dict[tuple[int, str], tuple[Tensor, Tensor]] = {}
        self._reach: dict[tuple[float, int, str], float] = {}
        self._column_sums: dict[tuple[int, str], Tensor] = {}

    def __repr__(self) -> str:
        return f"FieldNoise(secret=<hidden>, scale={self.scale}, features={self.features}, clip={self.clip})"

    @classmethod
    def for_text(cls, secret: str | bytes, *, scale: float = 3.0) -> FieldNoise:
        """The field ``aimod serve`` uses for language models: ``clip`` 5 and 64 features.

        Over a vocabulary of tens of thousands of tokens the tail would otherwise decide the distance between
        two steps' distributions (only tokens within a factor ``e^5`` of certainty count), and 64 features keep
        the two matrix products per decoding step cheap (text releases decisions, not log-probabilities).

        Example:
            >>> FieldNoise.for_text("a long owner secret")
            FieldNoise(secret=<hidden>, scale=3.0, features=64, clip=5.0)
        """
        return cls(secret, scale=scale, features=TEXT_FEATURES, clip=TEXT_CLIP)

    @property
    def noise_id(self) -> str:
        """A one-way identifier of this exact field (secret and settings), for tiers calibrated under it.

        Example:
            >>> a, b = FieldNoise("a long owner secret"), FieldNoise("a long owner secret", scale=2.0)
            >>> a.noise_id == FieldNoise("a long owner secret").noise_id, a.noise_id == b.noise_id
            (True, False)
        """
        material = b"".join(w.to_bytes(8, "little", signed=True) for w in self._field_words)
        settings = f"{self.scale!r}/{self.features}/{self.clip!r}".encode()
        return "field:" + hashlib.blake2b(material + settings, digest_size=16, person=b"aimod-noise-id").hexdigest()

    def _seeds(self, tag: int, count: int, device: torch.device) -> Tensor:
        base = signed64((self._field_words[0] ^ tag) + self._field_words[1])
        return mix64(torch.arange(count, dtype=torch.int64, device=device).mul_(GOLDEN).add_(base))

    def _frequencies(self, num_classes: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """``Ω / ℓ`` as ``(C, D)`` and the phases ``b`` ``(D,)``, cached per class count.

        Ω's values are float32 ones, kept in float64 for the product; the phases are float32.
        """
        key = (num_classes, str(device))
        if key not in self._projection:
            omega = normals(self._seeds(_OMEGA, 1, device), num_classes, self.features)[0]  # (C, D)
            u = normals(self._seeds(_PHASE, 1, device), 1, self.features)[0, 0]
            phase = torch.special.ndtr(u.double()).mul_(2 * math.pi).to(torch.float32)
            self._projection[key] = (omega.div_(self.scale).to(torch.float64), phase)
        return self._projection[key]

    def amplitudes(self, sigma: float, num_classes: int, device: torch.device) -> Tensor:
        """``A`` at variance ``σ²``: float32 ``(D, C)``, each entry ``N(0, σ²)``, nested in σ (cached).

        Example:
            >>> a = FieldNoise("a long owner secret", features=8).amplitudes(1.0, 10, torch.device("cpu"))
            >>> a.shape, a.dtype
            (torch.Size([8, 10]), torch.float32)
        """
        return self._amplitudes(sigma, num_classes, device).to(torch.float32)

    def _amplitudes(self, sigma: float, num_classes: int, device: torch.device) -> Tensor:
        """:meth:`amplitudes` as kept for the product: the float32 values in float64.

        Converted once, not at every step: a language model's ``A`` is 64 x 49,152.
        """
        key = (float(sigma), num_classes, str(device))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        seeds = self._seeds(_AMPLITUDE, self.features, device)
        variance = torch.full((self.features,), float(sigma) ** 2, dtype=torch.float64, device=device)
        amplitude = brownian(seeds, 1, num_classes, variance)[:, 0].to(torch.float64)
        self._cache[key] = amplitude
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return amplitude

    def prepare(self, sigmas: list[float], num_classes: int, device: torch.device | str = "cpu") -> None:
        """Computes and keeps the amplitudes of these tiers (a server calls it once at start-up).

        Example:
            >>> noise = FieldNoise("a long owner secret", features=8)
            >>> noise.prepare([0.0, 1.0, 2.5], 10)
            >>> len(noise._cache)
            2
        """
        served = sorted({float(torch.tensor(s, dtype=torch.float32)) for s in sigmas if s > 0})
        self._cache_size = max(self._cache_size, len(served))
        for sigma in served:
            self._amplitudes(sigma, num_classes, torch.device(device))

    def phi(self, clean: Tensor) -> Tensor:
        """Unit-norm features ``φ`` ``(N, D)`` of ``(N, C)`` clean logits.

        Example:
            >>> f = FieldNoise("a long owner secret", features=8).phi(torch.zeros(2, 3))
            >>> f.shape, bool(torch.allclose(f.norm(dim=1), torch.ones(2)))
            (torch.Size([2, 8]), True)
        """
        x = clean.to(torch.float32).log_softmax(-1).clamp_(min=-self.clip)
        omega, phase = self._frequencies(x.shape[1], x.device)
        features = torch.cos(self._project(x, omega).add_(phase))
        norms: Tensor = features.norm(dim=1, keepdim=True).clamp_(min=1e-30)
        return features.div_(norms)

    def _project(self, x: Tensor, omega: Tensor) -> Tensor:
        """``x·Ω/ℓ`` of clipped log-probabilities ``x`` ``(N, C)``: float32 ``(N, D)``, summed in float64.

        At most ``e^clip`` classes of a row lie above ``-clip`` (their probabilities sum to at most 1). Where that
        is a small part of the classes (a language model's field: ``e^5 ≈ 148`` of 49,152 tokens) the product is
        ``Σ_{x_c > -clip} (x_c + clip)·Ω_c − clip·Σ_c Ω_c``: the few classes above the clip and one column sum
        made once, each row by itself. Otherwise it is the dense product of :func:`_rows_matmul`. Either way
        the float64 sum is rounded once to float32, and a row's features depend on that row alone.
        """
        rows, classes = x.shape
        if math.exp(self.clip) * _SPARSE_FRACTION >= classes:
            return _rows_matmul(x, omega)
        key = (classes, str(x.device))
        if key not in self._column_sums:
            self._column_sums[key] = omega.sum(0)
        row, column = (x > -self.clip).nonzero(as_tuple=True)
        lifted = x[row, column].to(torch.float64).add_(self.clip)
        out = torch.zeros(rows, omega.shape[1], dtype=torch.float64, device=x.device)
        out.index_add_(0, row, omega.index_select(0, column).mul_(lifted[:, None]))
        return out.sub_(self._column_sums[key] * self.clip).to(torch.float32)

    def utility(self, clean: Tensor, sigma: Tensor, row_seeds: Tensor) -> Tensor:
        """``A_σ·φ(z)`` at every position: float32 ``(B, P, C)``, ``N(0, σ²)`` per element for every row."""
        batch, positions, classes = clean.shape
        out = torch.zeros(batch, positions, classes, dtype=torch.float32, device=clean.device)
        values = sigma.tolist()
        for value in sorted(set(values)):
            if value == 0.0:
                continue
            rows = torch.tensor([i for i, v in enumerate(values) if v == value], device=clean.device)
            z = clean.index_select(0, rows).reshape(-1, classes)  # every position of these rows is a query
            noise = _rows_matmul(self.phi(z), self._amplitudes(value, classes, clean.device))
            out.index_copy_(0, rows, noise.view(len(rows), positions, classes))
        return out

    def utility_bound(self, sigma: Tensor, num_classes: int) -> Tensor:
        """A bound on ``|utility noise|`` over every class of each row: float64 ``(B,)`` for ``(B,)`` σ.

        ``ε_j = φ·A_j`` with ``|φ| = 1``, so ``|ε_j| <= |A_j|`` (Cauchy–Schwarz); the bound is the largest column
        norm of the tier's ``A`` with a relative margin of 1e-5 for the float32 ``φ`` (its norm is 1 within
        ``D·2^-24``), the float64 sum and its rounding to float32. About 11 σ for 64 features and 49,152 tokens,
        where keyed noise is bounded by 5.66 σ (:func:`aimod.chain.brownian_bound`). Cached per tier.

        Example:
            >>> noise = FieldNoise("a long owner secret", features=8)
            >>> z = torch.randn(200, 50, generator=torch.Generator().manual_seed(0))
            >>> seeds = noise.row_seeds(200, torch.arange(200), z.device)
            >>> u = noise.utility(z[:, None, :], torch.full((200,), 2.0), seeds)
            >>> bool(u.abs().amax() <= noise.utility_bound(torch.tensor([2.0]), 50)[0])
            True
        """
        values = sigma.tolist()
        out = torch.zeros(len(values), dtype=torch.float64, device=sigma.device)
        for value in set(values):
            if value == 0.0:
                continue
            key = (float(value), num_classes, str(sigma.device))
            if key not in self._reach:
                columns = self._amplitudes(value, num_classes, sigma.device).square().sum(0).sqrt_()
                self._reach[key] = float(columns.max()) * (1 + 1e-5)
            out[torch.tensor([v == value for v in values], device=sigma.device)] = self._reach[key]
        return out

    def utility_at(self, clean: Tensor, sigma: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
        """The utility noise of one position per row at chosen (row, class) pairs, without the dense product.

        ``clean`` is ``(B, C)``, ``sigma`` ``(B,)``; returns a function of ``(rows, class_ids)`` (``(N,)`` int64
        each) giving float32 ``(N,)``: ``utility(clean[:, None], sigma, ...)[rows, 0, class_ids]``, with ``φ``
        made as there (every row of a tier at once) and each value summed in float64 by itself instead of in the
        ``(B, C)`` product. The two sums differ by about 1e-16 relative, so a value can differ in its last
        float32 bit where the float64 sum lies within that of a rounding boundary (about 1e-8 per value): the
        same tolerance that rows placed differently in a batch already have (:func:`_rows_matmul`).

        Example:
            >>> noise = FieldNoise("a long owner secret", features=8)
            >>> z, sigma = torch.randn(3, 40, generator=torch.Generator().manual_seed(1)), torch.tensor([1.0, 0.0, 2.0])
            >>> full = noise.utility(z[:, None, :], sigma, noise.row_seeds(3, torch.arange(3), z.device))[:, 0]
            >>> rows, ids = torch.tensor([0, 2, 2, 1]), torch.tensor([5, 39, 0, 7])
            >>> torch.allclose(noise.utility_at(z, sigma)(rows, ids), full[rows, ids], rtol=1e-6, atol=0)
            True
        """
        batch, classes = clean.shape
        device = clean.device
        values = sigma.tolist()
        features = torch.zeros(batch, self.features, dtype=torch.float64, device=device)
        tier = torch.full((batch,), -1, dtype=torch.int64, device=device)
        amplitudes = []
        for index, value in enumerate(sorted(set(values) - {0.0})):
            rows = torch.tensor([i for i, v in enumerate(values) if v == value], device=device)
            features.index_copy_(0, rows, self.phi(clean.index_select(0, rows)).to(torch.float64))
            tier.index_fill_(0, rows, index)
            amplitudes.append(self._amplitudes(value, classes, device))

        dense: list[Tensor] = []

        def at(rows: Tensor, class_ids: Tensor) -> Tensor:
            if rows.numel() > _DENSE_PAIRS * batch or dense:  # many pairs: the full product, then its values
                if not dense:
                    dense.append(self.utility(clean[:, None, :], sigma, torch.zeros(batch, dtype=torch.int64))[:, 0])
                return dense[0][rows, class_ids]
            out = torch.zeros(rows.numel(), dtype=torch.float32, device=device)
            of_pair = tier.index_select(0, rows)
            for index, amplitude in enumerate(amplitudes):
                pick = (of_pair == index).nonzero().flatten()
                columns = amplitude.index_select(1, class_ids.index_select(0, pick))  # (D, n)
                sums = features.index_select(0, rows.index_select(0, pick)).mul_(columns.t()).sum(-1)
                out.index_copy_(0, pick, sums.to(torch.float32))
            return out

        return at


_CHUNK = 16
_SPARSE_FRACTION = 16
"""The product of :meth:`FieldNoise._project` is sparse when ``e^clip`` is under 1/16 of the classes."""
_DENSE_PAIRS = 256
"""Pairs per row above which :meth:`FieldNoise.utility_at` makes the whole product (cheaper than one by one)."""


def _rows_matmul(x: Tensor, w: Tensor) -> Tensor:
    """``x @ w`` in float32: chunks of exactly 16 rows (zero-padded), float64 sums, so rows never affect each other.

    BLAS takes other code paths for other row counts, and on some CPUs for other positions inside a block (an
    AVX2 machine gave a row at position 5 of a 16-row product another low bit than the same row at position 0;
    AVX-512 machines did not). The products are therefore summed in float64, where those differences are about
    1e-16 relative, and rounded once to float32: two placements of a row can then differ only where their float64
    sums straddle a float32 rounding boundary (a chance of about 1e-8 per value).
    """
    rows = x.shape[0]
    padded = -(-rows // _CHUNK) * _CHUNK
    if padded != rows:
        x = torch.cat([x, x.new_zeros(padded - rows, x.shape[1])])
    x, w = x.to(torch.float64), w.to(torch.float64)
    out = torch.cat([x[i : i + _CHUNK] @ w for i in range(0, padded, _CHUNK)])
    return out[:rows].to(torch.float32)
