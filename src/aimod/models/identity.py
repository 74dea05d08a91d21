"""A model's identity: where an embedded model's weights live, and a SHA-256 over any model's weights.

The hash lets a tiers file say which model it was computed for.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import torch
from torch import nn

__all__ = ["weights_hash", "weights_path"]


def weights_path(name: str) -> Path:
    """Where an embedded model's committed weights live (inside the installed package)."""
    return Path(str(resources.files("aimod.models") / "weights" / name))


def weights_hash(model: nn.Module) -> str:
    """``"sha256:<hex>"`` over the model's state dict: name, dtype, shape and bytes of each entry, in order.

    The state dict holds the parameters and persistent buffers. The same weights give the same hash on any
    machine and device; one changed value changes it. Tied weights (an embedding shared with the output
    layer) count once per name. Preprocessing, tokenizer and class names are not weights and are not covered.

    Example:
        >>> a, b = nn.Linear(3, 2), nn.Linear(3, 2)
        >>> _ = b.load_state_dict(a.state_dict())
        >>> weights_hash(a) == weights_hash(b), weights_hash(a).startswith("sha256:")
        (True, True)
        >>> with torch.no_grad():
        ...     b.bias[0] += 1e-6
        >>> weights_hash(a) == weights_hash(b)
        False
    """
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict(keep_vars=False).items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return "sha256:" + h.hexdigest()
