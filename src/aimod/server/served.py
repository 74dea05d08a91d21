"""What one server runs: the model, its tiers, its tenants, its focus policy; checked at start-up.

:func:`build` loads the model named in ``[model]``, reads the tiers (a tiers file is checked against the
loaded model's name, weight hash and class count, so tiers calibrated for another model never apply), checks
that every tenant's tier exists and builds the engine of ``[engine]`` (:mod:`aimod.server.engines`) with the
noise source of ``[server] keying`` (``FieldNoise(secret)`` by default, or ``KeyedNoise(secret)``), whose utility
noise is nested across tiers. :func:`configured_noise` reads the secret and builds that noise source once; only
the noise source travels on, never the secret.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Literal

from aimod.calibrate.tiers import Calibration, check_model, load_tiers
from aimod.catalog import TextModel, VisionModel
from aimod.chain import same_cell
from aimod.errors import AimodError, ConfigError
from aimod.field import TEXT_CLIP, TEXT_FEATURES, FieldNoise
from aimod.noise import KeyedNoise
from aimod.server.config import DEV_SECRET, ServerConfig, check_tenant_tiers, read_secret
from aimod.server.engines import TEXT_ENGINES, VISION_ENGINES, TextEngine, VisionEngine, text_engine, vision_engine
from aimod.server.policy import FocusPolicy
from aimod.server.tenants import Tenants

__all__ = ["Served", "build", "configured_noise", "noise_source"]


@dataclass
class Served:
    """Everything the routes need: the model's name and kind, tiers, tenants, focus policy and its engine."""

    config: ServerConfig
    name: str
    kind: Literal["classification", "segmentation", "text"]
    tiers: dict[str, float]
    """Tier name -> utility σ."""
    calibration: Calibration | None
    tenants: Tenants
    policy: FocusPolicy
    vision: VisionEngine | None = None
    text: TextEngine | None = None

    @property
    def engine(self) -> TextEngine | VisionEngine:
        """The one engine this server runs (text or vision)."""
        engine = self.text if self.text is not None else self.vision
        assert engine is not None, "build() always sets one engine"
        return engine

    def describe(self) -> dict[str, Any]:
        """The model's entry in ``/v1/models`` (without the caller's tier)."""
        out: dict[str, Any] = {"task": self.kind, "focus_policy": self.policy.describe()}
        if self.calibration is not None:
            out["calibration"] = {"metric": self.calibration.metric, "date": self.calibration.date}
        return out


def build(config: ServerConfig, noise: KeyedNoise | str, *, loaded: VisionModel | TextModel | None = None) -> Served:
    """Loads and checks everything ``config`` names.

    Args:
        config: The checked ``server.toml``.
        noise: The noise source of :func:`configured_noise` (what ``aimod serve`` passes), or a secret to build
            it from with :func:`noise_source` (tests and notebooks).
        loaded: An already loaded model (:func:`aimod.load`) to use instead of loading ``[model].name`` again;
            tests share one this way.

    Raises:
        ConfigError: When a tenant's tier is not in the tiers, the tiers file belongs to another model, or
            ``[engine] kind`` is an engine for another kind of model.
        UnknownModelError, MissingExtraError: For the model.
    """
    from aimod.catalog import load

    where = str(config.path) if config.path is not None else "config"
    loaded = loaded if loaded is not None else load(config.model.name)  # the one place that loads the model
    text = isinstance(loaded, TextModel)
    if isinstance(noise, str):
        noise = noise_source(config, noise, text=text)
    engine = _engine_kind(config, text=text)
    num_classes, weights = loaded.num_classes, loaded.model
    tiers, calibration = _read_tiers(config, noise, loaded.weights_hash, num_classes, where)
    check_tenant_tiers(config.tenants, list(tiers), where)
    _check_chain(tiers, where)
    if isinstance(noise, FieldNoise):  # build each tier's field now, not in the first request
        device = next(weights.parameters()).device
        noise.prepare(list(tiers.values()), num_classes, device)
    tenants = Tenants(config.tenants, tiers)
    try:
        if isinstance(loaded, TextModel):
            policy = FocusPolicy(config.focus, id2label=None, tokenizer=loaded.tokenizer)
        else:
            policy = FocusPolicy(config.focus, id2label=loaded.id2label)
    except AimodError as error:
        raise ConfigError(where, "focus.allowed", str(error)) from None
    if isinstance(loaded, TextModel):
        text_side = text_engine(engine, loaded.model, loaded.tokenizer, noise, config.server, config)
        return Served(config, loaded.name, "text", tiers, calibration, tenants, policy, text=text_side)
    vision = vision_engine(engine, loaded, noise, config.server)
    kind: Literal["classification", "segmentation"] = (
        "segmentation" if loaded.kind == "segmentation" else "classification"
    )
    return Served(config, loaded.name, kind, tiers, calibration, tenants, policy, vision=vision)


def configured_noise(config: ServerConfig, *, dev: bool = False) -> KeyedNoise:
    """The server's noise source, from the secret of ``[secret]``: the secret is read here and goes no further.

    Args:
        config: The checked ``server.toml``.
        dev: With no secret configured, use the public development secret (logged as a warning).

    Raises:
        InvalidArgumentError: When no secret is found (:func:`~aimod.server.config.read_secret`).
        ConfigError: For ``keying = "fingerprint"`` with a language model.
    """
    from aimod.catalog import kind
    from aimod.server.logs import event

    secret = read_secret(config, dev=dev)
    if secret == DEV_SECRET:
        event("warning", message="serving with the public development secret (--dev): the noise is predictable")
    return noise_source(config, secret, text=kind(config.model.name) == "causal-lm")


def noise_source(config: ServerConfig, secret: str, *, text: bool) -> KeyedNoise:
    """The noise source of ``[server] keying``: :class:`~aimod.FieldNoise` or :class:`~aimod.KeyedNoise`.

    Raises:
        ConfigError: For ``keying = "fingerprint"`` with a language model.
    """
    where = str(config.path) if config.path is not None else "config"
    settings = config.server
    if settings.keying == "field":
        clip = settings.field_clip if settings.field_clip is not None else (TEXT_CLIP if text else 30.0)
        features = settings.field_features if settings.field_features is not None else (TEXT_FEATURES if text else 256)
        return FieldNoise(secret, scale=settings.field_scale, features=features, clip=clip)
    if text and settings.keying == "fingerprint":
        raise ConfigError(
            where, "server.keying", "is 'fingerprint', which keys images only; use 'field' or 'exact' for text."
        )
    return KeyedNoise(secret)


def _read_tiers(
    config: ServerConfig, noise: KeyedNoise, weights_hash: str, num_classes: int, where: str
) -> tuple[dict[str, float], Calibration | None]:
    """Tier name -> σ, from ``[tiers] sigma`` or the tiers file (checked against the hash of the model's weights)."""
    calibration = None
    if config.tiers.file is not None:
        path = config.resolve(config.tiers.file)
        try:
            calibration = load_tiers(path)
            check_model(calibration, config.model.name, weights_hash, num_classes)
        except AimodError as error:  # a schema error names the file already
            detail = str(error) if isinstance(error, ConfigError) else f"{path}: {error}"
            raise ConfigError(where, "tiers.file", detail) from None
        calibrated_under = calibration.extra.get("noise")
        if calibrated_under is not None and calibrated_under != getattr(noise, "noise_id", None):
            raise ConfigError(
                where,
                "tiers.file",
                f"{path} was calibrated under another noise (another secret or [server] field settings); "
                f"run `aimod calibrate --server-config {where}` again.",
            )
        tiers = {t.name: t.sigma for t in calibration.tiers}
    else:
        tiers = dict(config.tiers.sigma or {})
    return tiers, calibration


def _engine_kind(config: ServerConfig, *, text: bool) -> str:
    """``[engine] kind``, or the default for the model's kind; an engine of the other family is refused."""
    family, default = (TEXT_ENGINES, "hf") if text else (VISION_ENGINES, "batched")
    kind = config.engine.kind or default
    if kind not in family:
        where = str(config.path) if config.path is not None else "config"
        what = "a language model" if text else "a vision model"
        raise ConfigError(
            where, "engine.kind", f"is {kind!r}, which is not an engine for {what}; use one of {sorted(family)}."
        )
    return kind


def _check_chain(tiers: dict[str, float], where: str) -> None:
    """Two tiers whose σ share a grid cell of the nested noise would not be a chain with each other."""
    ordered = sorted(tiers.items(), key=lambda item: item[1])
    for (low_name, low), (high_name, high) in itertools.pairwise(ordered):
        if same_cell(low, high):
            raise ConfigError(
                where,
                "tiers",
                f"{low_name!r} (sigma {low}) and {high_name!r} (sigma {high}) are within 0.034 % of each other, "
                "too close for nested noise; give them the same sigma or move them apart.",
            )
