"""aimod: retraining-free AI model modulation by logits redistribution.

One frozen model, many behaviours: ``modulate_logits`` adds owner-set utility noise and user-set focus
noise between a model's logits and its decision; ``aimod.theory`` predicts the effect exactly from the clean
logits alone; ``aimod.load(name)`` gives any model of the catalog (``aimod.available()``, or ``hf:<id or path>``).

Example:
    >>> import torch, aimod
    >>> z = torch.tensor([[3.0, 1.0, 0.0]])
    >>> m = aimod.Modulation.parse("sigma=1, 2=+4")
    >>> out = aimod.modulate_logits(z, m, noise=aimod.KeyedNoise("owner secret"), keys=aimod.digest(z))
    >>> torch.equal(out, aimod.modulate_logits(z, m, noise=aimod.KeyedNoise("owner secret"), keys=aimod.digest(z)))
    True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from aimod import catalog
from aimod.catalog import available, load
from aimod.digest import digest
from aimod.errors import (
    AimodError,
    ConfigError,
    InvalidArgumentError,
    InvalidKeysError,
    InvalidLogitsError,
    InvalidModulationError,
    InvalidTargetError,
    MissingExtraError,
    ModelSourceError,
    UnknownClassError,
    UnknownModelError,
)
from aimod.field import FieldNoise
from aimod.models.wrap import wrap
from aimod.modulation import Modulation
from aimod.noise import KeyedNoise, NoiseSource, SeededNoise
from aimod.redistribute import ModulationBatch, modulate_logits

if TYPE_CHECKING:
    from aimod import theory

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # aimod.theory needs scipy; import it on first use so `import aimod` stays light.
    if name == "theory":
        return importlib.import_module("aimod.theory")
    raise AttributeError(f"module 'aimod' has no attribute {name!r}")


__all__ = [
    "AimodError",
    "ConfigError",
    "FieldNoise",
    "InvalidArgumentError",
    "InvalidKeysError",
    "InvalidLogitsError",
    "InvalidModulationError",
    "InvalidTargetError",
    "KeyedNoise",
    "MissingExtraError",
    "ModelSourceError",
    "Modulation",
    "ModulationBatch",
    "NoiseSource",
    "SeededNoise",
    "UnknownClassError",
    "UnknownModelError",
    "__version__",
    "available",
    "catalog",
    "digest",
    "load",
    "modulate_logits",
    "theory",
    "wrap",
]
