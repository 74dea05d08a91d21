"""The one operator: ``modulate_logits``. Every adapter (vision wrap, text processor, server) calls it.

For logits ``z`` and a :class:`~aimod.Modulation` per row, it returns ``z + σ·ε + s·σ_t·|η|`` where ``ε``
is standard normal noise on every class (utility) and ``|η|`` half-normal noise on each focused class
``t`` with signed strength ``s·σ_t`` (focus). The noise comes from a :class:`~aimod.noise.NoiseSource` and is
computed in float32; it is added to the logits in float32 at least (float64 for float64 logits, or where
float32 is too coarse at the logits' magnitude), and the result stays in that dtype (see
:func:`output_dtype`). The source makes the utility term (:meth:`~aimod.noise.NoiseSource.utility`): ``σ·ε``
for :class:`~aimod.SeededNoise`, the nested keyed path for :class:`~aimod.KeyedNoise`, a field of the clean
logits for :class:`~aimod.FieldNoise`; in each case every (row, position) gets ``N(0, σ²)`` on every class,
independently across classes. Focus noise is keyed normals on the row seeds.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from aimod import _checks
from aimod.errors import InvalidArgumentError, InvalidLogitsError
from aimod.modulation import Id2Label, Modulation, ResolvedModulation
from aimod.noise import FOCUS_STREAM, KeyedNoise, NoiseSource, normal_bound, normals_at

if TYPE_CHECKING:
    from aimod.field import FieldNoise

__all__ = [
    "RESOLUTION",
    "ModulationBatch",
    "ArgmaxPairs",
    "argmax_candidates",
    "argmax_pairs",
    "modulate_for_argmax",
    "modulate_logits",
    "output_dtype",
]


@dataclass(frozen=True)
class ModulationBatch:
    """One modulation per row, resolved to tensors; build it once and reuse it across calls.

    Build with :meth:`build`. Passing a ``ModulationBatch`` to :func:`modulate_logits` skips resolving
    class names on every call, which is what a decoding loop wants.

    Example:
        >>> batch = ModulationBatch.build([Modulation(sigma=1.0), Modulation(focus={2: -1.0})], 2, 4)
        >>> batch.sigma.tolist(), batch.focus_ids.tolist(), batch.focus_sigma.tolist()
        ([1.0, 0.0], [[0], [2]], [[0.0], [-1.0]])
    """

    sigma: Tensor
    """(B,) float32: utility std per row."""
    focus_ids: Tensor
    """(B, F) int64: focused class ids per row, padded with 0 (where focus_sigma is 0)."""
    focus_sigma: Tensor
    """(B, F) float32: signed std of the half-normal per focused class; 0 on padding."""
    num_classes: int
    """The number of classes the ids were resolved against."""
    uniform_sigma: float | None
    """The common sigma when every row has the same one (enables the scalar path), else None."""
    identity_rows: tuple[int, ...]
    """Rows that get no noise at all; their values are returned unchanged."""

    @property
    def batch_size(self) -> int:
        """B."""
        return int(self.sigma.shape[0])

    @property
    def is_identity(self) -> bool:
        """True when no row gets any noise."""
        return len(self.identity_rows) == self.batch_size

    @property
    def has_utility(self) -> bool:
        """True when some row has sigma > 0."""
        return self.uniform_sigma != 0.0

    @property
    def has_focus(self) -> bool:
        """True when some row focuses some class."""
        return self.focus_ids.shape[1] > 0

    def to(self, device: torch.device | str) -> ModulationBatch:
        """A copy with its tensors on ``device``."""
        return ModulationBatch(
            self.sigma.to(device),
            self.focus_ids.to(device),
            self.focus_sigma.to(device),
            self.num_classes,
            self.uniform_sigma,
            self.identity_rows,
        )

    def rows_between(self, start: int, stop: int) -> ModulationBatch:
        """Rows ``start`` to ``stop - 1`` as a batch of their own.

        Example:
            >>> ModulationBatch.build([Modulation(sigma=1.0), Modulation()], 2, 3).rows_between(1, 2).identity_rows
            (0,)
        """
        return ModulationBatch(
            self.sigma[start:stop],
            self.focus_ids[start:stop],
            self.focus_sigma[start:stop],
            self.num_classes,
            self.uniform_sigma,
            tuple(r - start for r in self.identity_rows if start <= r < stop),
        )

    def repeat_rows(self, repeats: int) -> ModulationBatch:
        """Each row ``repeats`` times in a row: rows ``b * repeats`` to ``b * repeats + repeats - 1`` are row ``b``.

        Example:
            >>> ModulationBatch.build([Modulation(sigma=1.0), Modulation()], 2, 3).repeat_rows(2).sigma.tolist()
            [1.0, 1.0, 0.0, 0.0]
        """
        return ModulationBatch(
            self.sigma.repeat_interleave(repeats),
            self.focus_ids.repeat_interleave(repeats, 0),
            self.focus_sigma.repeat_interleave(repeats, 0),
            self.num_classes,
            self.uniform_sigma,
            tuple(b * repeats + r for b in self.identity_rows for r in range(repeats)),
        )

    @classmethod
    def build(
        cls,
        modulation: Modulation | Sequence[Modulation] | ModulationBatch,
        batch_size: int,
        num_classes: int,
        id2label: Id2Label | None = None,
    ) -> ModulationBatch:
        """Resolves one modulation for all rows, or one per row, against ``num_classes`` classes.

        Raises:
            InvalidArgumentError: If a sequence's length is not ``batch_size`` or an item is not a Modulation.
            UnknownClassError: If a focus class is unknown (close matches are listed).
        """
        if isinstance(modulation, ModulationBatch):
            if modulation.batch_size != batch_size or modulation.num_classes != num_classes:
                raise InvalidArgumentError(
                    "modulation",
                    f"a ModulationBatch for {modulation.batch_size} rows and {modulation.num_classes} classes",
                    f"one for {batch_size} rows and {num_classes} classes",
                    "Build it with ModulationBatch.build(..., batch_size, num_classes) for these logits.",
                )
            return modulation
        if isinstance(modulation, Modulation):
            resolved = modulation.resolve(num_classes, id2label)
            return cls._from_resolved([resolved], [0] * batch_size, num_classes)
        if isinstance(modulation, (str, bytes)) or not isinstance(modulation, Sequence):
            raise InvalidArgumentError(
                "modulation",
                modulation,
                "a Modulation, a sequence of one Modulation per row, or a ModulationBatch",
                "Parse strings first with Modulation.parse(...).",
            )
        if len(modulation) != batch_size:
            raise InvalidArgumentError(
                "modulation",
                f"a sequence of {len(modulation)} modulations",
                f"one Modulation per row ({batch_size} rows) or a single Modulation",
            )
        index: dict[Modulation, int] = {}
        for m in modulation:
            if not isinstance(m, Modulation):
                raise InvalidArgumentError("modulation item", m, "a Modulation", "Use Modulation.coerce(...).")
            index.setdefault(m, len(index))
        unique = [m.resolve(num_classes, id2label) for m in index]
        return cls._from_resolved(unique, [index[m] for m in modulation], num_classes)

    @classmethod
    def _from_resolved(cls, unique: list[ResolvedModulation], rows: list[int], num_classes: int) -> ModulationBatch:
        width = max(len(r.class_ids) for r in unique)
        sigmas = torch.tensor([r.sigma for r in unique], dtype=torch.float32)
        ids = torch.zeros(len(unique), width, dtype=torch.int64)
        strengths = torch.zeros(len(unique), width, dtype=torch.float32)
        for i, r in enumerate(unique):
            ids[i, : len(r.class_ids)] = torch.tensor(r.class_ids, dtype=torch.int64)
            strengths[i, : len(r.strengths)] = torch.tensor(r.strengths, dtype=torch.float32)
        select = torch.tensor(rows, dtype=torch.int64)
        distinct_sigmas = {unique[i].sigma for i in set(rows)}
        identity = tuple(b for b, i in enumerate(rows) if unique[i].is_identity)
        return cls(
            sigma=sigmas[select],
            focus_ids=ids[select],
            focus_sigma=strengths[select],
            num_classes=num_classes,
            uniform_sigma=distinct_sigmas.pop() if len(distinct_sigmas) == 1 else None,
            identity_rows=identity,
        )


def modulate_logits(
    logits: Tensor,
    modulation: Modulation | Sequence[Modulation] | ModulationBatch,
    *,
    dim: int = -1,
    noise: NoiseSource,
    keys: Tensor | None = None,
    id2label: Id2Label | None = None,
    check_finite: bool = True,
) -> Tensor:
    """Adds utility and focus noise to logits; the decision is then ``argmax`` along ``dim``.

    Args:
        logits: Floating tensor whose first dim is the batch: ``(B, C)`` for classifiers, ``(B, C, H, W)``
            for segmenters (with ``dim=1``), ``(B, V)`` for language models; a 1-D ``(C,)`` is one row.
            Never modified.
        modulation: One :class:`~aimod.Modulation` for every row, a sequence with one per row (tenants
            mixed in one batch), or a prebuilt :class:`ModulationBatch`.
        dim: The class dim. It cannot be the batch dim 0 unless the logits are 1-D.
        noise: :class:`~aimod.SeededNoise` or :class:`~aimod.KeyedNoise`.
        keys: ``(B,)`` int64 row keys (see :func:`aimod.digest`); required by ``KeyedNoise``.
        id2label: Class names by id, to resolve named focus classes.
        check_finite: Reject NaN and ±inf logits (one reduction and, on a GPU, one host sync). Decoding
            loops pass False because ``-inf`` marks tokens masked by other processors; ``-inf`` stays ``-inf``.

    Returns:
        A new tensor with the shape and device of ``logits``, in the dtype of :func:`output_dtype`: float64
        for float64 logits; float32 for float32, float16 and bfloat16 logits (a half-precision grid would
        round small noise away and turn ties into wins of the first index); float64 where even float32's
        spacing at the largest finite logit is coarser than 1/256 of the smallest noise std. With no noise
        for any row (sigma 0 and no focus) the input is returned unchanged, dtype included; a row with no
        noise in a noisy batch keeps its values exactly (every wider dtype holds them).

    Raises:
        InvalidLogitsError: If logits are not a floating tensor, ``dim`` is invalid, or values are NaN/inf.
        InvalidArgumentError: If the modulation does not match the batch, or ``noise`` is not a noise source.
        InvalidKeysError: If keyed noise gets no keys or keys of the wrong shape.
        UnknownClassError: If a focus class is unknown.

    Example:
        >>> from aimod import Modulation, SeededNoise
        >>> z = torch.tensor([[2.0, 1.0, 0.0]])
        >>> out = modulate_logits(z, Modulation(sigma=1.0), noise=SeededNoise(0))
        >>> out.shape, bool(torch.equal(z, torch.tensor([[2.0, 1.0, 0.0]])))
        (torch.Size([1, 3]), True)
        >>> torch.equal(modulate_logits(z, Modulation(), noise=SeededNoise(0)), z)
        True
    """
    rows = _rows_view(logits, dim)  # (B, ..., C)
    batch, classes = rows.shape[0], rows.shape[-1]
    positions = math.prod(rows.shape[1:-1])
    plan = ModulationBatch.build(modulation, batch, classes, id2label)
    if not isinstance(noise, NoiseSource):
        raise InvalidArgumentError(
            "noise",
            f"an object of type {type(noise).__name__}",  # never the value: it may be a secret passed by mistake
            "a noise source",
            "Use aimod.SeededNoise(seed) or aimod.KeyedNoise(secret).",
        )
    if check_finite:
        _checks.check_finite(
            logits,
            "Check the model's output; inside a decoding loop where -inf marks masked tokens, pass check_finite=False.",
        )
    if plan.is_identity:
        return logits.clone()

    device = logits.device
    seeds = noise.row_seeds(batch, keys, device)
    work_dtype = output_dtype(logits, plan)
    out = torch.empty(batch, positions, classes, dtype=work_dtype, device=device)
    out.view(rows.shape).copy_(rows)  # one copy: layout to (B, P, C) and dtype to float32

    if plan.has_utility:  # (B, P, C): sigma·eps for SeededNoise, the nested path for KeyedNoise
        out.add_(noise.utility(out, plan.sigma, seeds))
    if plan.has_focus:
        ids = plan.focus_ids.to(device)  # (B, F)
        shift = normals_at(seeds, positions, ids, FOCUS_STREAM)  # (B, P, F)
        shift.abs_().mul_(plan.focus_sigma.to(device)[:, None, :])
        out.scatter_add_(2, ids[:, None, :].expand(batch, positions, ids.shape[1]), shift.to(work_dtype))
    if plan.identity_rows:
        keep = torch.tensor(plan.identity_rows, dtype=torch.int64, device=device)
        out.view(rows.shape).index_copy_(0, keep, rows.index_select(0, keep).to(work_dtype))

    result = out.view(rows.shape)
    if logits.ndim == 1:
        return result[0]
    return result.movedim(-1, dim).contiguous()


def _round_up(x: Tensor, dtype: torch.dtype) -> Tensor:
    """``x`` (float64) in ``dtype``, rounded towards +inf: never below ``x``."""
    y = x.to(dtype)
    return torch.where(y.to(torch.float64) < x, torch.nextafter(y, torch.tensor(math.inf, dtype=dtype)), y)


@functools.lru_cache(maxsize=64)
def _path_bounds(sigmas: tuple[float, ...], device: torch.device) -> Tensor:
    from aimod.chain import brownian_bound

    variance = torch.tensor(sigmas, dtype=torch.float32, device=device).to(torch.float64).square()
    return brownian_bound(variance, normal_bound(device))


def _utility_bound(plan: ModulationBatch, device: torch.device) -> Tensor:
    """Per row, float64 ``(B,)``: the bound on ``|utility noise|`` (:func:`aimod.chain.brownian_bound`), cached by σ."""
    if not plan.has_utility:
        return torch.zeros(plan.batch_size, dtype=torch.float64, device=device)
    sigmas, rows = torch.unique(plan.sigma.cpu(), return_inverse=True)
    return _path_bounds(tuple(sigmas.tolist()), torch.device(device)).index_select(0, rows.to(device))


def _noise_range(logits: Tensor, plan: ModulationBatch, work_dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``(lo, hi)``, each ``(B, V)`` in ``work_dtype``: every noisy value of :func:`modulate_logits` lies between."""
    device = logits.device
    z = logits.to(work_dtype)
    m = normal_bound(device)
    utility = _round_up(_utility_bound(plan, device), work_dtype)[:, None]
    hi, lo = z + utility, z - utility
    if plan.has_focus:
        ids = plan.focus_ids.to(device)
        strength = plan.focus_sigma.to(device)
        reach = strength.abs().mul(torch.tensor(m, dtype=torch.float32, device=device))  # >= |m|·|σ_f| rounded
        hi.scatter_add_(1, ids, torch.where(strength > 0, reach, 0.0).to(work_dtype))
        lo.scatter_add_(1, ids, torch.where(strength < 0, -reach, 0.0).to(work_dtype))
    return lo, hi


def argmax_candidates(
    logits: Tensor,
    plan: ModulationBatch,
    work_dtype: torch.dtype,
    result_dtype: torch.dtype | None = None,
    floor: Tensor | None = None,
) -> Tensor:
    """The tokens that can still win the argmax of :func:`modulate_logits` with keyed noise: bool ``(B, V)``.

    Every keyed normal is at most ``m = normal_bound()`` in magnitude, so a row's utility noise is at most
    ``U = brownian_bound(σ²)`` (:func:`aimod.chain.brownian_bound`, rounding included) and a focused token's
    focus noise lies in ``[0, m·σ_f]`` for ``σ_f > 0`` and in ``[m·σ_f, 0]`` for ``σ_f < 0``. With
    ``hi_j = z_j + U + up_j`` and ``lo_j = z_j − U − down_j``, computed in ``work_dtype`` by the same float
    operations in the same order as the noisy values (rounding is monotone, so each noisy value lies in
    ``[lo_j, hi_j]``), a token with ``hi_j < max_k lo_k`` is beaten by the token holding that max, whatever the
    noise: it is not a candidate. Every token that reaches the noisy maximum, ties included, is a candidate.
    Rows holding NaN keep every token. ``result_dtype``: the dtype the caller rounds the noisy values to before
    its argmax (the comparison is then made after that rounding too, so tokens that could tie there stay).
    ``floor``: ``(B, 1)`` values known not to exceed each row's noisy maximum (e.g. noisy values already drawn),
    used where higher than ``max_k lo_k``: fewer candidates, the same argument.

    Example:
        >>> plan = ModulationBatch.build(Modulation(sigma=1.0), 1, 4)
        >>> argmax_candidates(torch.tensor([[0.0, 20.0, 10.0, -torch.inf]]), plan, torch.float32).tolist()
        [[False, True, True, False]]
    """
    lo, hi = _noise_range(logits, plan, work_dtype)
    best = lo.amax(-1, keepdim=True)
    if floor is not None:
        best = torch.maximum(best, floor.to(work_dtype))  # NaN in either keeps NaN: every token stays
    if result_dtype is not None and result_dtype != work_dtype:
        hi, best = hi.to(result_dtype), best.to(result_dtype)
    return (hi >= best) | best.isnan()


@dataclass(frozen=True)
class ArgmaxPairs:
    """The tokens :func:`argmax_pairs` drew, with their noisy values; every other token of a modulated row is out.

    ``rows``, ``tokens`` and ``values`` are aligned ``(N,)`` tensors (each pair once); ``modulated`` holds the
    rows with noise, ``(R,)`` int64 (the identity rows are not in it and keep their clean values); ``values`` are
    in ``dtype``, :func:`output_dtype`'s.
    """

    rows: Tensor
    tokens: Tensor
    values: Tensor
    modulated: Tensor
    dtype: torch.dtype
    dense: Tensor | None = None
    """Set when so many tokens could win that drawing them one by one costs more than the full operator (the field
    at a high σ): then :func:`modulate_logits`'s ``(B, V)`` result, and no pairs."""


def argmax_pairs(
    logits: Tensor,
    modulation: Modulation | Sequence[Modulation] | ModulationBatch,
    *,
    noise: KeyedNoise,
    keys: Tensor,
    id2label: Id2Label | None = None,
    result_dtype: torch.dtype | None = None,
) -> ArgmaxPairs:
    """The sparse form of :func:`modulate_for_argmax`: the drawn tokens and their noisy values, nothing dense.

    A caller that owns the logits (a decoding loop) writes ``-inf`` over the ``modulated`` rows and the values at
    the pairs, with no ``(B, V)`` result in between. Arguments as for :func:`modulate_for_argmax`.

    Example:
        >>> from aimod import KeyedNoise, Modulation
        >>> z = torch.randn(2, 1000, generator=torch.Generator().manual_seed(0)) * 10
        >>> plan = [Modulation(sigma=1.0), Modulation()]
        >>> pairs = argmax_pairs(z, plan, noise=KeyedNoise("a long owner secret"), keys=torch.tensor([3, 4]))
        >>> pairs.modulated.tolist(), sorted(set(pairs.rows.tolist())), pairs.values.dtype
        ([0], [0], torch.float32)
    """
    if not isinstance(noise, KeyedNoise):
        raise InvalidArgumentError(
            "noise",
            f"an object of type {type(noise).__name__}",
            "a KeyedNoise (bounded keyed normals)",
            "Use modulate_logits(...) for other noise sources.",
        )
    logits = _checks.check_floating_tensor(logits, "of shape (B, V)")
    if logits.ndim != 2 or logits.numel() == 0:
        raise InvalidLogitsError("logits", f"a tensor of shape {tuple(logits.shape)}", "a non-empty (B, V) tensor")
    batch, classes = logits.shape
    plan = ModulationBatch.build(modulation, batch, classes, id2label)
    device = logits.device
    # the clean maximum of every block of _BLOCK tokens: one fast pass; the rest works on the blocks that can hold
    # a token wanted, then on their tokens
    blocks = -(-classes // _BLOCK)
    padded = logits
    if blocks * _BLOCK != classes:
        padded = torch.full((batch, blocks * _BLOCK), -math.inf, dtype=logits.dtype, device=device)
        padded[:, :classes] = logits
    grid = padded.view(batch, blocks, _BLOCK)
    block_max = grid.amax(-1)  # NaN where a block holds one
    work_dtype = _output_dtype(logits, plan, float(block_max.amax()))
    block_max = block_max.to(work_dtype)
    active = torch.ones(batch, dtype=torch.bool, device=device)
    if plan.identity_rows:
        active[list(plan.identity_rows)] = False
    modulated = active.nonzero().flatten()
    empty = torch.empty(0, dtype=torch.int64, device=device)
    if plan.is_identity:
        return ArgmaxPairs(empty, empty, torch.empty(0, dtype=work_dtype, device=device), modulated, work_dtype)
    seeds = noise.row_seeds(batch, keys, device)
    field = _field_noise(noise)
    if field is not None:  # a smooth field of the clean logits: its own bound and values at the pairs
        reach = field.utility_bound(plan.sigma.to(device), classes)
    else:
        reach = _utility_bound(plan, device).to(torch.float64)

    row_max = block_max.amax(-1).to(torch.float64)  # (B,), NaN for rows holding NaN
    nan_row = row_max.isnan()
    if field is not None:  # +inf, NaN or nothing but -inf: the field's log-softmax, so every noise value, is NaN
        nan_row = ~row_max.isfinite()
    focused = torch.where(plan.focus_sigma.to(device) != 0, plan.focus_ids.to(device), -1)  # padding never matches

    def tokens_at_least(low: Tensor, below: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """The (row, token, clean logit) of the unfocused tokens with ``low <= z`` (and ``z < below``), NaN too."""
        low_w = low.to(work_dtype)[:, None]
        chosen = block_max >= low_w
        if below is None:
            chosen |= block_max.isnan()
        chosen &= active[:, None]
        block_row, block = chosen.nonzero(as_tuple=True)
        values = grid[block_row, block]  # (n, _BLOCK)
        values_w = values.to(work_dtype)
        keep = values_w >= low_w[block_row]
        if below is None:
            keep |= values_w.isnan()
        else:
            keep &= values_w < below.to(work_dtype)[block_row, None]  # NaN fails both
        i, j = keep.nonzero(as_tuple=True)
        row, token, clean = block_row[i], block[i] * _BLOCK + j, values[i, j]
        if plan.has_focus or blocks * _BLOCK != classes:
            keep = (token[:, None] != focused[row]).all(-1)  # focused ids are drawn on their own
            keep &= token < classes  # not the padding
            row, token, clean = row[keep], token[keep], clean[keep]
        return row, token, clean

    if field is not None and plan.has_utility:  # the field's bound is about 11 σ: at a high σ, draw every token
        near = block_max >= (row_max - reach).to(work_dtype)[:, None]
        if int(near.sum()) > _DENSE_BLOCKS * batch:
            full = modulate_logits(logits, plan, noise=noise, keys=keys, check_finite=False)
            return ArgmaxPairs(
                empty, empty, torch.empty(0, dtype=work_dtype, device=device), modulated, work_dtype, full
            )
    path: Callable[[Tensor, Tensor], Tensor] | None = None
    if plan.has_utility and field is not None:
        path = field.utility_at(logits, plan.sigma.to(device))
    elif plan.has_utility:  # the nested path at the pairs only, exactly KeyedNoise.utility's values there
        from aimod.chain import PairPath

        path = PairPath(seeds, plan.sigma.to(device).to(torch.float64).square())

    def draw(row: Tensor, token: Tensor, clean: Tensor) -> Tensor:  # the full operator's z + utility at these pairs
        values = clean.to(work_dtype)
        return values + path(row, token) if path is not None else values

    # first the leaders (the tokens within a fraction of the utility bound of the row's clean maximum; every token
    # of a row holding NaN) and every focused id (focus added after the utility, as modulate_logits does)
    lead_low = torch.where(nan_row, -math.inf, row_max - _LEAD * reach)
    row1, token1, clean1 = tokens_at_least(lead_low, None)
    count1 = row1.numel()
    if plan.has_focus:
        focus_row, focus_col = (focused >= 0).logical_and_(active[:, None]).nonzero(as_tuple=True)
        focus_token = focused[focus_row, focus_col]
        row1, token1 = torch.cat([row1, focus_row]), torch.cat([token1, focus_token])
        clean1 = torch.cat([clean1, logits[focus_row, focus_token]])
    values1 = draw(row1, token1, clean1)
    if plan.has_focus:
        shift = normals_at(seeds, 1, plan.focus_ids.to(device), FOCUS_STREAM)[:, 0, :][focus_row, focus_col]
        shift.abs_().mul_(plan.focus_sigma.to(device)[focus_row, focus_col])
        values1[count1:] += shift.to(work_dtype)
    # their noisy maximum is a real value of the row: only tokens that can reach it are left to draw; these are
    # not focused, so z_j + U >= floor is the test, made with a margin for rounding
    floor = torch.full((batch,), -math.inf, dtype=work_dtype, device=device)
    floor = floor.scatter_reduce_(0, row1, values1, "amax").to(torch.float64)
    kinds = (torch.finfo(work_dtype), torch.finfo(result_dtype or work_dtype))
    eps, tiny = max(f.eps for f in kinds), max(f.tiny for f in kinds)  # rounding in either dtype cannot merge
    threshold = floor - reach - (floor.abs() + reach) * (4 * eps) - 4 * tiny
    threshold = torch.where(floor.isinf(), floor, threshold)  # +inf leads: the +inf tokens; -inf: every token
    threshold = torch.where(nan_row, math.inf, threshold)  # every token of it is a leader already
    row2, token2, clean2 = tokens_at_least(threshold, lead_low)
    values2 = draw(row2, token2, clean2)
    return ArgmaxPairs(
        torch.cat([row1, row2]), torch.cat([token1, token2]), torch.cat([values1, values2]), modulated, work_dtype
    )


def modulate_for_argmax(
    logits: Tensor,
    modulation: Modulation | Sequence[Modulation] | ModulationBatch,
    *,
    noise: KeyedNoise,
    keys: Tensor,
    id2label: Id2Label | None = None,
    result_dtype: torch.dtype | None = None,
) -> Tensor:
    """:func:`modulate_logits` for a greedy decision: the same argmax, noise drawn only where it can matter.

    Keyed noise is bounded (:func:`argmax_candidates`), so a token far enough below the best cannot win. This
    returns, for ``(B, V)`` logits, the noisy values :func:`modulate_logits` gives at every candidate token (bit
    for bit: :func:`aimod.chain.brownian_pairs` draws the same path at those ids) and ``-inf`` at every other, so
    ``out.argmax(-1) == modulate_logits(...).argmax(-1)`` exactly, ties included (the lowest index). Rows
    without noise are returned unchanged; ``-inf`` logits stay ``-inf``. Not for sampling or logprobs: the
    values outside the candidates are gone. No finiteness check (decoding loops mask with ``-inf``).
    :func:`argmax_pairs` gives the same drawn values without the dense result.

    Two stages: the tokens within a quarter of the row's utility bound ``U`` of its best clean logit, and its
    focused ids, are drawn first; their noisy maximum is a real value of the row, so another token can only win
    if ``z_j + U`` reaches it (the test is made on the clean logits with a margin for rounding). Both stages
    find their tokens through the maximum of each block of 64 tokens (one pass over the logits), then compare
    only the blocks that can hold one. With σ 1 on a language model's logits that leaves tens of tokens per row
    of 49,152.

    Args:
        logits: ``(B, V)`` floating logits; never modified.
        modulation: As for :func:`modulate_logits`.
        noise: A :class:`~aimod.KeyedNoise` (its normals are bounded; its path is the nested one).
        keys: ``(B,)`` int64 row keys.
        id2label: Class names by id, to resolve named focus classes.
        result_dtype: The dtype the caller rounds the result to before its argmax (see
            :func:`argmax_candidates`); by default the result's own dtype.

    Returns:
        A new ``(B, V)`` tensor in :func:`output_dtype`'s dtype (float32 for float32 logits).

    Example:
        >>> from aimod import KeyedNoise, Modulation
        >>> noise, keys = KeyedNoise("a long owner secret"), torch.tensor([3, 4])
        >>> z = torch.randn(2, 1000, generator=torch.Generator().manual_seed(0)) * 10
        >>> full = modulate_logits(z, Modulation(sigma=1.0), noise=noise, keys=keys)
        >>> fast = modulate_for_argmax(z, Modulation(sigma=1.0), noise=noise, keys=keys)
        >>> torch.equal(fast.argmax(-1), full.argmax(-1)), int(fast.isfinite().sum()) < 100
        (True, True)
    """
    pairs = argmax_pairs(logits, modulation, noise=noise, keys=keys, id2label=id2label, result_dtype=result_dtype)
    if not pairs.modulated.numel():
        return logits.clone()
    if pairs.dense is not None:
        return pairs.dense
    out = torch.full(logits.shape, -math.inf, dtype=pairs.dtype, device=logits.device)
    if pairs.modulated.numel() < logits.shape[0]:  # the identity rows keep their values
        keep = torch.ones(logits.shape[0], dtype=torch.bool, device=logits.device)
        keep[pairs.modulated] = False
        keep = keep.nonzero().flatten()
        out.index_copy_(0, keep, logits.index_select(0, keep).to(pairs.dtype))
    out[pairs.rows, pairs.tokens] = pairs.values
    return out


def _field_noise(noise: KeyedNoise) -> FieldNoise | None:
    """The noise as a :class:`~aimod.FieldNoise` when it is one, else None.

    Imported here: the field builds on this module's neighbours, not on it.
    """
    from aimod.field import FieldNoise

    return noise if isinstance(noise, FieldNoise) else None


_BLOCK = 64
"""Tokens per block whose clean maximum :func:`argmax_pairs` takes in its one full pass."""
_LEAD = 0.25
"""The leaders :func:`argmax_pairs` draws first: the tokens within this fraction of the utility bound of the best."""
_DENSE_BLOCKS = 24
"""Blocks per row (on average over the batch) within the field's bound of the best, above which
:func:`argmax_pairs` takes the full operator."""


RESOLUTION = 2.0**-8
"""The modulated values are computed in float64 where float32's spacing at the largest finite logit exceeds
``RESOLUTION`` times the smallest noise std of the batch: rounding then biases ties by well under 1 %."""


def output_dtype(logits: Tensor, plan: ModulationBatch) -> torch.dtype:
    """The dtype :func:`modulate_logits` computes and returns a noisy batch in.

    float64 for float64 logits. Otherwise float32, promoted to float64 when the spacing of float32 at the
    largest finite ``|logit|`` is coarser than ``RESOLUTION`` times the smallest non-zero std (utility or
    focus) of any row, so the noise is not rounded into ties. One reduction over the logits.

    Example:
        >>> plan = ModulationBatch.build(Modulation(sigma=1e-3), 1, 3)
        >>> output_dtype(torch.tensor([[3.0, 3.0, 0.0]], dtype=torch.bfloat16), plan)
        torch.float32
        >>> output_dtype(torch.tensor([[1e4, 1e4, 0.0]]), plan)
        torch.float64
    """
    return _output_dtype(logits, plan, None)


def _output_dtype(logits: Tensor, plan: ModulationBatch, high: float | None) -> torch.dtype:
    """:func:`output_dtype`, given the largest logit (``None``: found here)."""
    if logits.dtype == torch.float64:
        return torch.float64
    stds = torch.cat([plan.sigma.abs().flatten(), plan.focus_sigma.abs().flatten()])
    stds = stds[stds > 0]
    if not stds.numel() or not logits.numel():
        return torch.float32
    if high is None:
        low, high = (float(x) for x in torch.aminmax(logits.detach()))
    else:
        low = float(logits.detach().amin())
    if math.isfinite(low) and math.isfinite(high):  # one pass in the common case
        largest = max(-low, high)
    else:
        magnitude = logits.detach().abs().to(torch.float32)
        largest = float(torch.where(torch.isfinite(magnitude), magnitude, 0.0).max())
    spacing = math.ulp(float(torch.tensor(largest, dtype=torch.float32))) * 2.0**29  # float64 ulp -> float32 ulp
    return torch.float64 if spacing > RESOLUTION * float(stds.min()) else torch.float32


def _rows_view(logits: Tensor, dim: int) -> Tensor:
    """Checks logits and dim; returns a view of shape (B, ..., C) with the class dim last."""
    logits = _checks.check_floating_tensor(logits, "with the batch first")
    if logits.ndim == 0 or logits.numel() == 0:
        raise InvalidLogitsError(
            "logits", f"a tensor of shape {tuple(logits.shape)}", "a non-empty tensor with at least one dim"
        )
    if isinstance(dim, bool) or not isinstance(dim, int) or not -logits.ndim <= dim < logits.ndim:
        raise InvalidLogitsError(
            "dim", dim, f"an int in [{-logits.ndim}, {logits.ndim}) for logits of shape {tuple(logits.shape)}"
        )
    dim %= logits.ndim
    if logits.ndim == 1:
        return logits[None]
    if dim == 0:
        raise InvalidLogitsError(
            "dim",
            0,
            f"a class dim other than the batch dim 0 for logits of shape {tuple(logits.shape)}",
            "Put the batch first, e.g. (B, C) with dim=-1 or (B, C, H, W) with dim=1.",
        )
    return logits.movedim(dim, -1)
