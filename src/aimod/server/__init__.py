"""The multi-tenant modulation server: ``aimod serve --config server.toml`` (needs the ``server`` extra).

One model in memory, many tenants: each API key maps to a tier (a utility σ, set by the owner); a request may
add focus within the owner's policy; noise is keyed on the request's content, so asking again returns the same
answer. See docs/server.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aimod.server.app import create_app
    from aimod.server.config import ServerConfig, hash_key, load_config, new_key, read_secret
    from aimod.server.served import Served, build

__all__ = ["Served", "ServerConfig", "build", "create_app", "hash_key", "load_config", "new_key", "read_secret"]

# Loaded on first use, so that `aimod.server.config` needs no web stack.
_HOMES = {"create_app": "app", "Served": "served", "build": "served"} | dict.fromkeys(
    ("ServerConfig", "hash_key", "load_config", "new_key", "read_secret"), "config"
)


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"aimod.server.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'aimod.server' has no attribute {name!r}")
