"""Offline data sets: everything here is generated or shipped with a package, never downloaded."""

from __future__ import annotations

from aimod.data.synthetic import classifier_logits

__all__ = ["classifier_logits"]
