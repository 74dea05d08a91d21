"""Vision adapters: ``wrap`` any classifier or segmenter, and ``load`` the embedded models by name."""

from __future__ import annotations

from aimod.models.registry import LoadedModel, available, load
from aimod.models.wrap import ModulatedModel, wrap

__all__ = ["LoadedModel", "ModulatedModel", "available", "load", "wrap"]
