"""64-bit integer mixing in torch ops: the counter-based core of keyed noise and digests.

Everything here works on ``torch.int64`` tensors on any device, with wrapping (two's complement)
arithmetic, so CPU and CUDA give the same bits. The mixer is the SplitMix64 finaliser (Steele, Lea &
Flood, 2014): three xor-shifts and two odd multiplications, a bijection on 64-bit words with full avalanche.
A counter walked in steps of the golden-ratio constant and passed through it is the SplitMix64 generator,
which passes BigCrush. It is a statistical generator, not a cryptographic one.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["GOLDEN", "mix64", "mix64_int", "signed64"]


def signed64(value: int) -> int:
    """Maps an unsigned 64-bit constant to the signed int64 with the same bits."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


GOLDEN = signed64(0x9E3779B97F4A7C15)
"""The SplitMix64 increment (2^64 / golden ratio, odd)."""
_MUL1 = signed64(0xBF58476D1CE4E5B9)
_MUL2 = signed64(0x94D049BB133111EB)
_ROUNDS = ((30, _MUL1), (27, _MUL2), (31, None))


def mix64(x: Tensor) -> Tensor:
    """SplitMix64 finaliser applied elementwise, **in place** on ``x`` (an int64 tensor it owns).

    Right shifts in torch are arithmetic on int64, so each one is masked to make it logical.

    Example:
        >>> mix64(torch.tensor([0, 1], dtype=torch.int64)).tolist() == [mix64_int(0), mix64_int(1)]
        True
    """
    tmp = torch.empty_like(x)
    for shift, mul in _ROUNDS:
        torch.bitwise_right_shift(x, shift, out=tmp)
        tmp.bitwise_and_((1 << (64 - shift)) - 1)
        x.bitwise_xor_(tmp)
        if mul is not None:
            x.mul_(mul)
    return x


def mix64_int(value: int) -> int:
    """The same finaliser on one Python int, as the reference the tensor version is tested against."""
    mask = (1 << 64) - 1
    x = value & mask
    for shift, mul in _ROUNDS:
        x ^= x >> shift
        if mul is not None:
            x = (x * (mul & mask)) & mask
    return signed64(x)
