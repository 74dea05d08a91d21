"""Tenants and their API keys: who is calling, and so which tier (and σ) applies.

The tier comes only from the key. Keys are compared by their SHA-256 (the configuration stores nothing
else), so a leaked configuration file does not leak keys, and the lookup takes the same path for every key.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aimod.errors import AuthenticationError, PermissionDeniedError
from aimod.server.config import TenantConfig, hash_key

__all__ = ["Tenant", "Tenants"]

_BEARER = re.compile(r"Bearer ([\x21-\x7e]{16,256})")


@dataclass(frozen=True)
class Tenant:
    """An authenticated caller."""

    name: str
    tier: str
    sigma: float
    """The tier's utility σ."""


class Tenants:
    """API key -> tenant.

    Example:
        >>> from aimod.server.config import TenantConfig, hash_key
        >>> t = Tenants([TenantConfig(name="acme", tier="free", key_sha256=hash_key("k" * 20))], {"free": 2.0})
        >>> t.authenticate("Bearer " + "k" * 20)
        Tenant(name='acme', tier='free', sigma=2.0)
    """

    def __init__(self, tenants: Sequence[TenantConfig], sigmas: Mapping[str, float]) -> None:
        self._by_hash = {t.key_sha256: t for t in tenants}
        self._sigmas = dict(sigmas)

    def authenticate(self, authorization: str | None) -> Tenant:
        """The tenant of an ``Authorization: Bearer <key>`` header.

        Raises:
            AuthenticationError: For a missing, malformed or unknown key (the key never appears in the message).
            PermissionDeniedError: For a revoked key.
        """
        if not authorization:
            raise AuthenticationError(
                "Missing API key: send the header 'Authorization: Bearer <your key>' (the openai client's api_key).",
                code="missing_api_key",
            )
        match = _BEARER.fullmatch(authorization.strip())
        if match is None:
            raise AuthenticationError(
                "Malformed Authorization header: expected 'Bearer ' followed by a key of 16-256 printable characters.",
                code="invalid_api_key",
            )
        digest = hash_key(match.group(1))
        tenant = self._by_hash.get(digest)
        if tenant is None or not hmac.compare_digest(tenant.key_sha256, digest):
            raise AuthenticationError("Unknown API key. Ask the model owner for a key.", code="invalid_api_key")
        if tenant.revoked:
            raise PermissionDeniedError(
                f"The API key of tenant {tenant.name!r} has been revoked.", code="revoked_api_key"
            )
        return Tenant(tenant.name, tenant.tier, self._sigmas[tenant.tier])
