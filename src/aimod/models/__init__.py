"""Vision adapters: ``wrap`` any classifier or segmenter; image preprocessing; model identity.

Models by name (embedded and ``hf:``) come from the catalog: :func:`aimod.load`.
"""

from __future__ import annotations

from aimod.models.wrap import ModulatedModel, wrap

__all__ = ["ModulatedModel", "wrap"]
