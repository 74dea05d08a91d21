"""``AimLogitsProcessor``: modulation inside Hugging Face ``generate``, keyed on each row's token prefix.

At every decoding step the processor passes the step's scores ``(B, V)`` through
:func:`aimod.modulate_logits`. With :class:`~aimod.KeyedNoise` (the default use), a row's key is the digest
of its whole token prefix, prompt and generated tokens so far, so the same prompt always yields the same
completion, alone or in any batch. Leading pad tokens (left padding) are not part of the prefix. The digest
is a sum of per-position terms (:func:`aimod.digest.token_contributions`), all in tensor
ops on the scores' device: no host-device synchronisation per step and no Python loop over rows.

An earlier version extended the previous step's digest by one token; it had to guess that the rows were the
same as last step, and beam search (which reorders rows) or a processor reused across ``generate`` calls broke
that guess silently. Digesting the prefix is a few element-wise kernels over ``(B, T)`` token ids, negligible
next to a forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from aimod.digest import finalize_state, token_contributions
from aimod.errors import InvalidArgumentError
from aimod.modulation import Modulation
from aimod.noise import NoiseSource, SeededNoise
from aimod.redistribute import ModulationBatch, modulate_logits

__all__ = ["AimLogitsProcessor", "prefix_digest", "prefix_keys"]


def _prefix_terms(input_ids: Tensor, pad_token_id: int | None) -> tuple[Tensor, Tensor]:
    """Digest terms ``(B, T)`` of every token (0 on left padding) and each token's 0-based prefix position."""
    ids = input_ids.to(torch.int64)
    batch, steps = ids.shape
    if pad_token_id is None:
        start = torch.zeros(batch, dtype=torch.int64, device=ids.device)
    else:
        # first non-pad position; a row of only pads starts at `steps`
        is_token = ids != pad_token_id
        start = torch.where(is_token.any(1), is_token.to(torch.int64).argmax(1), steps)
    positions = torch.arange(steps, device=ids.device)[None, :] - start[:, None]  # (B, T), < 0 on padding
    contributions = token_contributions(ids, positions.clamp(min=0))
    contributions.masked_fill_(positions < 0, 0)
    return contributions, positions


def prefix_digest(input_ids: Tensor, pad_token_id: int | None) -> tuple[Tensor, Tensor]:
    """Digest states and lengths of each row's prefix, leading pad tokens excluded.

    Equal to ``aimod.digest([ids])`` of the unpadded row once finalised with :func:`finalize_state`.

    Returns:
        ``(state, length)``: int64 ``(B,)`` each.

    Example:
        >>> from aimod import digest
        >>> ids = torch.tensor([[0, 0, 5, 6], [7, 5, 6, 8]])
        >>> state, length = prefix_digest(ids, pad_token_id=0)
        >>> bool(finalize_state(state, length)[0] == digest([[5, 6]])[0]), length.tolist()
        (True, [2, 4])
    """
    contributions, positions = _prefix_terms(input_ids, pad_token_id)
    return contributions.sum(1), positions[:, -1] + 1


def prefix_keys(input_ids: Tensor, pad_token_id: int | None = None) -> Tensor:
    """Key of every prefix: ``keys[b, t]`` is the digest of row ``b``'s tokens up to position ``t``.

    Leading tokens equal to ``pad_token_id`` (left padding) are not part of any prefix; the keys at those
    positions are meaningless. ``keys[:, -1]`` is the key :class:`AimLogitsProcessor` gives each row.

    Example:
        >>> from aimod import digest
        >>> keys = prefix_keys(torch.tensor([[0, 5, 6, 7]]), pad_token_id=0)
        >>> bool(keys[0, 2] == digest([[5, 6]])[0]), bool(keys[0, 3] == digest([[5, 6, 7]])[0])
        (True, True)
    """
    contributions, positions = _prefix_terms(input_ids, pad_token_id)
    # wrapping int64 running sums: the digest state of each prefix
    return finalize_state(contributions.cumsum(1), (positions + 1).clamp(min=0))


def _check_token_ids(rows: Sequence[object], *, per_row: bool) -> None:
    """Refuses word (str) focus keys at construction: the processor sees token ids only."""
    for row, modulation in enumerate(rows):
        if not isinstance(modulation, Modulation):
            continue  # ModulationBatch.build names what a row may be
        for key in modulation.focus:
            if not isinstance(key, int):
                raise InvalidArgumentError(
                    f"modulation[{row}] focus key" if per_row else "focus key",
                    key,
                    "a token id (int): AimLogitsProcessor sees token ids, not words",
                    "Turn words into token ids first with aimod.text.focus.token_focus(tokenizer, modulation), "
                    "once per row.",
                )


class AimLogitsProcessor:
    """A transformers ``LogitsProcessor`` that modulates every decoding step's scores.

    Args:
        modulation: One Modulation for all rows, one per row (tenants mixed in one ``generate`` call), or a
            prebuilt ModulationBatch. Focus keys must be token ids here (see :func:`aimod.text.token_focus`).
        noise: ``KeyedNoise(secret)`` keys each row on its token prefix; ``SeededNoise(seed)`` draws fresh,
            reproducible noise at every step.
        pad_token_id: Leading tokens equal to it are left padding and not part of the prefix.

    With one modulation per input row, ``generate``'s expansion of each row into ``num_beams`` (or
    ``num_return_sequences``) consecutive rows is followed: each expanded row keeps its input row's modulation.

    Every call digests each row's whole prefix afresh, in O(B·T) tensor ops on the scores' device (no host
    sync): rows may be reordered between steps (beam search) and one processor may serve many ``generate``
    calls, and neither can give a row another row's key.

    Example:
        >>> import aimod
        >>> proc = AimLogitsProcessor(aimod.Modulation(sigma=1.0), noise=aimod.KeyedNoise("secret"))
        >>> ids, scores = torch.tensor([[1, 2, 3]]), torch.zeros(1, 10)
        >>> torch.equal(proc(ids, scores), proc(ids, scores))
        True
    """

    def __init__(
        self,
        modulation: Modulation | Sequence[Modulation] | ModulationBatch,
        *,
        noise: NoiseSource,
        pad_token_id: int | None = None,
    ) -> None:
        if not isinstance(noise, NoiseSource):
            raise InvalidArgumentError(
                "noise",
                f"an object of type {type(noise).__name__}",  # never the value: it may be a secret
                "a noise source",
                "Use aimod.KeyedNoise(secret) or aimod.SeededNoise(seed).",
            )
        rows = [modulation] if isinstance(modulation, Modulation) else modulation
        if isinstance(rows, Sequence):
            _check_token_ids(rows, per_row=not isinstance(modulation, Modulation))
        self.modulation = modulation
        self.noise = noise
        self.pad_token_id = pad_token_id
        self._plans: dict[tuple[int, int, str], ModulationBatch] = {}

    def _plan(self, batch: int, vocab: int, device: torch.device) -> ModulationBatch:
        key = (batch, vocab, str(device))
        if key not in self._plans:
            rows = self.modulation
            per_row = (
                len(rows) if isinstance(rows, Sequence) else rows.batch_size if isinstance(rows, ModulationBatch) else 0
            )
            if per_row and batch != per_row and batch % per_row == 0:
                # beam search and num_return_sequences expand each input row into consecutive rows
                plan = ModulationBatch.build(rows, per_row, vocab).repeat_rows(batch // per_row)
            else:
                plan = ModulationBatch.build(rows, batch, vocab)
            self._plans[key] = plan.to(device)
        return self._plans[key]

    def _keys(self, input_ids: Tensor) -> Tensor:
        """Row keys of the current prefixes (the digest of every row's unpadded token prefix)."""
        state, length = prefix_digest(input_ids, self.pad_token_id)
        return finalize_state(state, length)

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        """Modulated scores ``(B, V)`` for the next token of each row."""
        plan = self._plan(scores.shape[0], scores.shape[-1], scores.device)
        keys = None if isinstance(self.noise, SeededNoise) else self._keys(input_ids)
        return modulate_logits(scores, plan, noise=self.noise, keys=keys, check_finite=False)
