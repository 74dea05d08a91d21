"""The multi-tenant modulation server: ``aimod serve --config server.toml`` (needs the ``server`` extra).

One model in memory, many tenants: each API key maps to a tier (a utility σ, set by the owner); a request may
add focus within the owner's policy; noise is keyed on the request's content, so asking again returns the same
answer. See docs/server.md.
"""

from __future__ import annotations

from aimod.server.app import create_app
from aimod.server.config import ServerConfig, hash_key, load_config, new_key, read_secret
from aimod.server.served import Served, build

__all__ = ["Served", "ServerConfig", "build", "create_app", "hash_key", "load_config", "new_key", "read_secret"]
