"""Optional dependencies, imported on first use with the pip line in the error."""

from __future__ import annotations

import importlib
from typing import Any

from aimod.errors import MissingExtraError

__all__ = ["require"]


def require(module: str, extra: str) -> Any:
    """``importlib.import_module(module)``, or :class:`~aimod.MissingExtraError` naming ``aimod[extra]``."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(module.split(".")[0], extra) from error
