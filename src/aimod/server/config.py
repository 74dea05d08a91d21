"""The server's configuration: one TOML file, checked completely before anything loads.

Example ``server.toml``::

    [model]
    name = "resnet-fashion"           # an embedded model or hf:<id or path>

    [tiers]
    file = "tiers-resnet-fashion.toml"  # from `aimod calibrate` (relative to this file); or, instead:
    # sigma = { premium = 0.0, free = 3.2 }

    [secret]
    env = "AIMOD_SECRET"              # the noise secret: an environment variable ...
    # file = "/run/secrets/aimod"     # ... or a file (only its first line is read)

    [focus]
    allowed = ["Sneaker", "Bag"]      # classes (or words, for a language model) a request may focus; ["*"]: any
    max_sigma = 4.0                   # the largest |focus strength| a request may ask for

    [[tenants]]
    name = "acme"
    tier = "standard"
    key_sha256 = "sha256:9f86d0..."   # `aimod new-key` prints a key and this line; the key itself is never stored

    [engine]                          # optional: what runs the model (default: by the model's kind)
    kind = "batched"                  # "hf" or "vllm" for a language model, "batched" for a vision model

    [server]                          # all optional
    host = "127.0.0.1"
    port = 8000

Every field is checked by :func:`load_config`; an unknown field, a wrong type or a tier no tenant can use
stops start-up with a message naming the field (``tenants[1].tier``).
"""

from __future__ import annotations

import hashlib
import math
import os
import secrets
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from aimod._schema import NAME, SHA256, SHA256_FORM, Strict, config_error
from aimod.errors import ConfigError, InvalidArgumentError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "DEV_SECRET",
    "EngineConfig",
    "FocusConfig",
    "ModelConfig",
    "SecretConfig",
    "ServerConfig",
    "ServerSettings",
    "TenantConfig",
    "TiersConfig",
    "hash_key",
    "load_config",
    "new_key",
    "read_secret",
]

DEV_SECRET = "aimod-development-secret-never-use-in-production"
"""The noise secret of ``aimod serve --dev``: public, so its noise can be predicted by anyone."""


def hash_key(api_key: str) -> str:
    """What the configuration stores for an API key: ``"sha256:" + hex digest``.

    API keys from :func:`new_key` carry 256 random bits, so a plain SHA-256 cannot be reversed or guessed.

    Example:
        >>> hash_key("test")
        'sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'
    """
    return "sha256:" + hashlib.sha256(api_key.encode()).hexdigest()


def new_key() -> str:
    """A fresh API key: ``aimod-`` and 64 hex digits (256 random bits)."""
    return "aimod-" + secrets.token_hex(32)


class ModelConfig(Strict):
    """``[model]``: what the server runs."""

    name: str = Field(min_length=1)
    """An embedded model name (``resnet-fashion``, ``segformer-scenes``, ``efficientnet-lite0``,
    ``smollm2-135m``) or ``hf:<id or path>``."""


class EngineConfig(Strict):
    """``[engine]``: what runs the model behind the routes (:mod:`aimod.server.engines`)."""

    kind: str | None = None
    """``"hf"`` (batched Hugging Face ``generate``) or ``"vllm"`` (vLLM's continuous batching, in its own
    environment: docs/vllm.md) for a language model, ``"batched"`` (fixed-shape batches) for a vision model;
    unset: the one for the model's kind."""
    max_model_len: int | None = Field(default=None, ge=16, le=1_048_576)
    """``vllm``: the longest prompt plus completion, in tokens (unset: the model's context)."""
    kv_cache_gib: float = Field(default=1.0, gt=0, le=4096)
    """``vllm``: memory for the KV cache, in GiB (``VLLM_CPU_KVCACHE_SPACE`` on CPU builds)."""
    max_num_seqs: int = Field(default=16, ge=1, le=4096)
    """``vllm``: the most sequences decoded at once; more requests wait in vLLM's queue."""

    @field_validator("kind")
    @classmethod
    def _known(cls, kind: str | None) -> str | None:
        from aimod.server.engines import TEXT_ENGINES, VISION_ENGINES

        known = sorted(TEXT_ENGINES) + sorted(VISION_ENGINES)
        if kind is not None and kind not in known:
            raise ValueError(f"must be one of {known} (text: {sorted(TEXT_ENGINES)}, vision: {sorted(VISION_ENGINES)})")
        return kind


class TiersConfig(Strict):
    """``[tiers]``: a calibrated tiers file, or σ per tier given directly (exactly one of the two)."""

    file: str | None = None
    sigma: dict[str, float] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TiersConfig:
        if (self.file is None) == (self.sigma is None):
            raise ValueError("give exactly one of `file` (a tiers file from aimod calibrate) or `sigma` (a table)")
        for name, sigma in (self.sigma or {}).items():
            if not NAME.fullmatch(name):
                raise ValueError(f"tier name {name!r} must be letters, digits, '_', '-' or '.'")
            if not math.isfinite(sigma) or sigma < 0:
                raise ValueError(f"sigma of tier {name!r} must be a finite number >= 0, got {sigma!r}")
        if self.sigma is not None and not self.sigma:
            raise ValueError("`sigma` must name at least one tier")
        return self


class SecretConfig(Strict):
    """``[secret]``: where the noise secret comes from (an environment variable, or a file)."""

    env: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SecretConfig:
        if self.env is not None and self.file is not None:
            raise ValueError("give `env` or `file`, not both")
        return self


class FocusConfig(Strict):
    """``[focus]``: the focus requests may ask for."""

    allowed: list[str] = Field(default_factory=list)
    """Class names (words for a language model) that may be focused; ``["*"]`` allows any; empty: none."""
    max_sigma: float = 0.0
    """The largest ``|strength|`` of one focused class or word."""

    @field_validator("max_sigma")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"must be a finite number >= 0, got {value!r}")
        return value


class TenantConfig(Strict):
    """One ``[[tenants]]`` entry."""

    name: str
    tier: str
    key_sha256: str
    revoked: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.fullmatch(value):
            raise ValueError(f"must be letters, digits, '_', '-' or '.' (at most 64), got {value!r}")
        return value

    @field_validator("key_sha256")
    @classmethod
    def _hash(cls, value: str) -> str:
        if not SHA256.fullmatch(value):
            raise ValueError(
                f"must be {SHA256_FORM} (the hash of the key, never the key itself); `aimod new-key` prints one"
            )
        return value


class ServerSettings(Strict):
    """``[server]``: network, batching and limits (all optional)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    keying: Literal["field", "fingerprint", "exact"] = "field"
    """What the utility noise is a function of: ``field`` (a smooth keyed random field of the clean logits, so
    near-duplicates share noise with no boundary: :class:`aimod.FieldNoise`), ``fingerprint`` (keyed normals on
    a quantised fingerprint of the clean logits; images only) or ``exact`` (keyed normals on the exact pixels or
    token prefix). Every choice nests the tiers (:mod:`aimod.chain`)."""
    field_scale: float = Field(default=3.0, gt=0, le=1000)
    """``keying = "field"``: its length scale in log-probability units (larger: variants share more noise, and
    so do distinct inputs)."""
    field_features: int | None = Field(default=None, ge=8, le=4096)
    """``keying = "field"``: random Fourier features (memory: features x classes floats per tier). Default: 256
    for vision models, 64 for language models (two matrix products per decoding step)."""
    field_clip: float | None = Field(default=None, gt=0, le=1000)
    """``keying = "field"``: log-probabilities below ``-field_clip`` count as equal. Default: 30 for vision
    models (every class matters), 5 for language models (only tokens within a factor e^5 of certainty do; over
    a 49k-token vocabulary the tail would otherwise decide the distance)."""
    fingerprint_step: float = Field(default=0.5, gt=0, le=100)
    """``keying = "fingerprint"``: logit quantisation step of the fingerprint."""
    release: Literal["labels", "rounded", "probabilities"] = "labels"
    """What ``/v1/classify`` returns at a tier with utility noise: the top-k ``labels`` only (the default: soft
    votes over probabilities recover a tier faster than majority votes), probabilities ``rounded`` to 2
    decimals, or the modulated ``probabilities`` (6 decimals). Tiers without noise always get probabilities."""
    batch_wait_ms: float = Field(default=5.0, ge=0, le=1000)
    """How long the first request of a batch waits for others."""
    max_batch: int = Field(default=32, ge=1, le=1024)
    """Rows per forward pass (vision) or per ``generate`` call (language)."""
    max_body_bytes: int = Field(default=16_000_000, ge=1024)
    """The largest body of a vision request (JSON with a base64 image, or multipart), counted as it arrives."""
    max_text_body_bytes: int = Field(default=2_000_000, ge=1024)
    """The largest body of a completions request, counted as it arrives."""
    max_prompt_chars: int = Field(default=100_000, ge=1)
    """The most characters of a prompt (all chat messages together), checked before anything is tokenised."""
    max_image_bytes: int = Field(default=8_000_000, ge=1024)
    max_image_pixels: int = Field(default=4_194_304, ge=64)
    max_new_tokens: int = Field(default=256, ge=1, le=32768)
    default_max_tokens: int = Field(default=64, ge=1, le=32768)
    max_top_k: int = Field(default=20, ge=1)
    graceful_timeout_s: float = Field(default=30.0, ge=0)
    max_connections: int = Field(default=1000, ge=1)
    """Open connections at most; one more is answered 503 and closed at once."""
    keep_alive_s: float = Field(default=5.0, gt=0, le=3600)
    """An idle keep-alive connection is closed after this long."""
    header_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    """A connection must send a whole request line and headers within this long (from its opening, or from the
    end of its previous response), however slowly it trickles them."""
    body_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    """A request's whole body must arrive within this long of its headers."""


class ServerConfig(Strict):
    """The whole ``server.toml``."""

    model: ModelConfig
    tiers: TiersConfig
    secret: SecretConfig = Field(default_factory=SecretConfig)
    focus: FocusConfig = Field(default_factory=FocusConfig)
    tenants: list[TenantConfig] = Field(min_length=1)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    server: ServerSettings = Field(default_factory=ServerSettings)
    path: Path | None = Field(default=None, exclude=True)
    """Where the file was read from (relative paths in it are relative to its folder)."""

    @model_validator(mode="after")
    def _unique(self) -> ServerConfig:
        names = [t.name for t in self.tenants]
        hashes = [t.key_sha256 for t in self.tenants]
        for i, t in enumerate(self.tenants):
            if names.index(t.name) != i:
                raise ValueError(f"tenants[{i}].name {t.name!r} is used twice")
            if hashes.index(t.key_sha256) != i:
                raise ValueError(f"tenants[{i}].key_sha256 is also tenant {names[hashes.index(t.key_sha256)]!r}'s")
        return self

    def resolve(self, relative: str) -> Path:
        """A path from the file, relative to the file's folder."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() or self.path is None else self.path.parent / path


def check_tenant_tiers(tenants: list[TenantConfig], tiers: list[str], where: str = "config") -> None:
    """Every tenant's tier must exist.

    Raises:
        ConfigError: Naming the tenant entry.
    """
    for i, tenant in enumerate(tenants):
        if tenant.tier not in tiers:
            raise ConfigError(where, f"tenants[{i}].tier", f"must be one of the tiers {tiers}, got {tenant.tier!r}.")


def load_config(path: str | Path) -> ServerConfig:
    """Reads and checks a ``server.toml``.

    Raises:
        InvalidArgumentError: For a missing or unreadable file.
        ConfigError: For invalid TOML or any invalid field; the message names the field
            (``tenants[0].key_sha256``) and says what is allowed.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidArgumentError("--config", str(path), "an existing server.toml", "See docs/server.md.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidArgumentError("--config", str(path), "a readable UTF-8 file", str(error)) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(str(path), "(file)", f"is not valid TOML: {error}.") from None
    return parse_config(data, path)


def parse_config(data: dict[str, Any], path: Path | None = None) -> ServerConfig:
    """Checks a configuration given as nested dicts (what ``server.toml`` parses to)."""
    where = str(path) if path is not None else "config"
    try:
        config = ServerConfig.model_validate({**data, "path": path})
    except ValidationError as error:
        raise config_error(where, error, "docs/server.md") from None
    if config.tiers.sigma is not None:
        check_tenant_tiers(config.tenants, list(config.tiers.sigma), where)
    return config


def read_secret(config: ServerConfig, *, dev: bool = False) -> str:
    """The noise secret: from ``[secret]`` (``env``, default ``AIMOD_SECRET``, or ``file``).

    Args:
        config: The checked configuration.
        dev: With no secret configured, fall back to the public :data:`DEV_SECRET` instead of refusing.

    Raises:
        InvalidArgumentError: When no secret is found (and ``dev`` is off), or it is shorter than 16 characters.
            The message never contains the secret.
    """
    source = config.secret
    if source.file is not None:
        path = config.resolve(source.file)
        try:
            text = path.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise InvalidArgumentError("secret.file", str(path), "a readable file", error.strerror or "") from None
        value = text[0].strip() if text else ""
        where = f"the first line of {path}"
    else:
        name = source.env or "AIMOD_SECRET"
        value = os.environ.get(name, "").strip()
        where = f"${name}"
    if not value:
        if dev:
            return DEV_SECRET
        raise InvalidArgumentError(
            "secret",
            f"nothing in {where}",
            "a noise secret of at least 16 characters",
            f"Set it (e.g. export {source.env or 'AIMOD_SECRET'}=$(python -c 'import secrets; "
            "print(secrets.token_hex(32))')), or start with --dev for a public development secret.",
        )
    if len(value) < 16:
        raise InvalidArgumentError(
            "secret", f"{len(value)} characters in {where}", "at least 16 characters", "Use secrets.token_hex(32)."
        )
    return value
