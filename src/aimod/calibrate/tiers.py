"""Tiers: named utility levels, their calibrated σ, and the TOML file that records them.

An owner asks for tiers by target, the expected agreement of the tier's decisions with the clean model's
(``premium=1.0 standard=0.9 basic=0.7 free=0.5``); calibration finds each tier's σ. The tiers file records,
per tier, σ, the target, the predicted agreement and its 95 % interval, and for the whole file the model's
identity (a SHA-256 of its weights), the calibration inputs and their number, the method and the date. The
server reads it with :func:`load_tiers`, which checks every invariant (:func:`validate`) so that a damaged or
edited file cannot hand a tenant a better tier than its key grants. The file is checked the way ``server.toml``
is: pydantic models with no unknown keys and no coercion (``sigma = "0.5"`` is refused), the same name and hash
patterns (:mod:`aimod._schema`), and a :class:`~aimod.errors.ConfigError` naming the field (``tiers.free.sigma``).

Example:
    >>> targets = parse_tiers(["premium=1.0", "standard=0.9", "free=0.5"])
    >>> targets
    {'premium': 1.0, 'standard': 0.9, 'free': 0.5}
    >>> check_targets(targets, num_classes=10)
    >>> check_targets({"free": 0.5, "standard": 0.9, "basic": 0.7}, num_classes=10)
    Traceback (most recent call last):
    ...
    aimod.errors.InvalidTargetError: `tiers` must be strictly increasing or ... each with its own level.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, ValidationInfo, field_validator

from aimod._schema import NAME, NAME_FORM, SHA256, SHA256_FORM, Strict, config_error
from aimod.errors import ConfigError, InvalidArgumentError, InvalidTargetError

__all__ = [
    "Calibration",
    "Tier",
    "check_model",
    "check_targets",
    "load_tiers",
    "parse_tiers",
    "save_tiers",
    "validate",
]


_DOCS = "docs/calibration.md"


class _TiersError(ConfigError, InvalidArgumentError):
    """A tiers file (or :class:`Calibration`) that breaks the schema: a :class:`ConfigError` naming the field.

    It is an :class:`InvalidArgumentError` too (``name`` is the field path, ``value`` the file), as the hand-written
    checks it replaces raised, so callers catching either keep working.
    """

    def __init__(self, where: str, field: str, problem: str) -> None:
        self.where = where
        self.field = field
        self.name = field
        self.value = where
        self.expected = problem
        Exception.__init__(self, str(ConfigError(where, field, problem)))


@dataclass(frozen=True)
class Tier:
    """One calibrated tier."""

    name: str
    target: float
    """The agreement asked for."""
    sigma: float
    """The utility σ that delivers it."""
    predicted: float
    """The expected agreement at ``sigma`` on the calibration inputs."""
    low: float
    """Lower end of the 95 % interval of the expected agreement on new inputs like the calibration ones."""
    high: float
    """Upper end of that interval."""
    sigma_low: float | None = None
    """Text calibration: the 95 % interval of σ itself (bootstrap over prompts)."""
    sigma_high: float | None = None


@dataclass(frozen=True)
class Calibration:
    """A model's tiers and how they were obtained: the content of a tiers file."""

    model: str
    """The model name (``resnet-fashion``, ``smollm2-135m``, ``hf:...``)."""
    weights_sha256: str
    """:func:`aimod.calibrate.weights_hash` of the model the tiers were computed for."""
    num_classes: int
    """Classes (vocabulary size for a language model)."""
    metric: str
    """What agreement means here (decisions, pixels or tokens)."""
    method: str
    """How σ was found."""
    inputs: str
    """The calibration inputs (no labels are used)."""
    samples: int
    """How many calibration inputs."""
    date: str
    """UTC, ISO 8601."""
    tiers: tuple[Tier, ...]
    extra: dict[str, Any] = field(default_factory=dict)
    """Method-specific settings (e.g. new tokens per completion, keys)."""

    def tier(self, name: str) -> Tier:
        """The tier called ``name``.

        Raises:
            InvalidArgumentError: For an unknown name (the known ones are listed).
        """
        for t in self.tiers:
            if t.name == name:
                return t
        raise InvalidArgumentError("tier", name, f"one of {[t.name for t in self.tiers]}")

    def to_dict(self) -> dict[str, Any]:
        """The TOML document as nested dicts (``None`` fields left out)."""
        tiers = {t.name: {k: v for k, v in asdict(t).items() if k != "name" and v is not None} for t in self.tiers}
        return {
            "model": {"name": self.model, "weights_sha256": self.weights_sha256, "num_classes": self.num_classes},
            "calibration": {
                "metric": self.metric,
                "method": self.method,
                "inputs": self.inputs,
                "samples": self.samples,
                "date": self.date,
                **({"settings": self.extra} if self.extra else {}),
            },
            "tiers": tiers,
        }


def parse_tiers(items: Sequence[str] | Mapping[str, float]) -> dict[str, float]:
    """``["premium=1.0", "free=0.5"]`` (or a mapping) -> ``{"premium": 1.0, "free": 0.5}``, order kept.

    Raises:
        InvalidTargetError: For a malformed item, a duplicate name or a non-numeric target.
    """
    pairs: list[tuple[str, object]] = []
    if isinstance(items, Mapping):
        pairs = [(str(k), v) for k, v in items.items()]
    else:
        for item in items:
            key, sep, text = str(item).partition("=")
            if not sep or not key.strip():
                raise InvalidTargetError("tier", item, "NAME=TARGET", "For example --tier free=0.5.")
            pairs.append((key.strip(), text.strip()))
    out: dict[str, float] = {}
    for name, value in pairs:
        if not NAME.fullmatch(name):
            raise InvalidTargetError("tier name", name, NAME_FORM)
        if name.lower() in {n.lower() for n in out}:
            raise InvalidTargetError("tier", name, "each tier name once (ignoring case)")
        try:
            target = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InvalidTargetError(f"target of tier {name!r}", value, "a number in (1/K, 1]") from None
        out[name] = target
    if not out:
        raise InvalidTargetError("tiers", "none", "at least one NAME=TARGET", "For example --tier free=0.5.")
    return out


def check_targets(targets: Mapping[str, float], num_classes: int) -> None:
    """Targets must lie in ``(1/K, 1]`` and be strictly monotone in the order given.

    Raises:
        InvalidTargetError: Naming the tier and the allowed range, or the order problem.
    """
    floor = 1.0 / num_classes
    for name, target in targets.items():
        if not math.isfinite(target) or not floor < target <= 1.0:
            raise InvalidTargetError(
                f"target of tier {name!r}",
                target,
                f"a number in (1/K, 1] = ({floor:.6g}, 1] for this model's {num_classes} classes",
                "1.0 is the clean model; 1/K is chance agreement, which no sigma reaches.",
            )
    values = list(targets.values())
    steps = [b - a for a, b in itertools.pairwise(values)]
    if steps and not (all(s > 0 for s in steps) or all(s < 0 for s in steps)):
        shown = ", ".join(f"{k}={v:g}" for k, v in targets.items())
        raise InvalidTargetError(
            "tiers",
            shown,
            "strictly increasing or strictly decreasing in the order given",
            "List tiers from best to worst (or worst to best), each with its own level.",
        )


def save_tiers(calibration: Calibration, path: str | Path) -> Path:
    """Writes the tiers file (TOML) atomically: a temporary file in the same folder, synced, then renamed.

    Returns:
        The path written.

    Raises:
        InvalidArgumentError: When the file cannot be written (the message names the path); nothing is left
            behind.
    """
    import tomli_w

    validate(calibration)
    path = Path(path)
    header = (
        "# aimod tiers file, written by `aimod calibrate`. Each tier's sigma delivers its target: the expected\n"
        "# agreement of the modulated model's decisions with the clean model's.\n"
    )
    temporary: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
            temporary = handle.name
            handle.write(header + tomli_w.dumps(calibration.to_dict()))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        temporary = None
    except OSError as error:
        raise InvalidArgumentError("tiers file", str(path), "a writable file path", str(error)) from None
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
    return path


class _TierTable(Strict):
    """``[tiers.<name>]``."""

    target: float = Field(allow_inf_nan=False)
    sigma: float = Field(allow_inf_nan=False)
    predicted: float = Field(allow_inf_nan=False)
    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)
    sigma_low: float | None = Field(default=None, allow_inf_nan=False)
    sigma_high: float | None = Field(default=None, allow_inf_nan=False)

    @field_validator("sigma")
    @classmethod
    def _zero_exactly_at_one(cls, sigma: float, info: ValidationInfo) -> float:
        target = info.data.get("target")
        if target is not None and (sigma < 0 or (target == 1.0) != (sigma == 0.0)):
            raise ValueError(f"must be 0 for a target of 1 and > 0 below it; its target is {target}")
        return sigma


class _ModelTable(Strict):
    """``[model]``."""

    name: str
    weights_sha256: str
    num_classes: int = Field(ge=1)

    @field_validator("weights_sha256")
    @classmethod
    def _hash(cls, value: str) -> str:
        if not SHA256.fullmatch(value):
            raise ValueError(f"must be {SHA256_FORM} (aimod.calibrate.weights_hash of the model)")
        return value


class _CalibrationTable(Strict):
    """``[calibration]``."""

    metric: str
    method: str
    inputs: str
    samples: int = Field(ge=1)
    date: str
    settings: dict[str, Any] = Field(default_factory=dict)


class _TiersFile(Strict):
    """The whole tiers file."""

    model: _ModelTable
    calibration: _CalibrationTable
    tiers: dict[str, _TierTable] = Field(min_length=1)


def _checked(document: Mapping[str, Any], where: str) -> Calibration:
    """The calibration a tiers document describes, every invariant checked.

    Raises:
        ConfigError: Naming ``where`` and the field path of the first problem (also an InvalidArgumentError).
    """
    try:
        file = _TiersFile.model_validate(document)
    except ValidationError as error:
        raise config_error(where, error, _DOCS, _TiersError) from None
    seen: set[str] = set()
    for name in file.tiers:
        if not NAME.fullmatch(name) or name.lower() in seen:
            raise _TiersError(
                where, f"tiers.{name}", f"must be a tier name of {NAME_FORM}, distinct ignoring case (got {name!r})."
            )
        seen.add(name.lower())
    tiers = tuple(Tier(name=name, **entry.model_dump()) for name, entry in file.tiers.items())
    for t in tiers:
        if not 0.0 <= t.low <= t.predicted <= t.high <= 1.0:
            raise _TiersError(
                where,
                f"tiers.{t.name}",
                "must have 0 <= low <= predicted <= high <= 1 "
                f"(got low {t.low}, predicted {t.predicted}, high {t.high}).",
            )
    k = file.model.num_classes
    for t in tiers:
        try:
            check_targets({t.name: t.target}, k)
        except InvalidTargetError as error:
            problem = f"must be {error.expected} (got {t.target!r})."
            raise _TiersError(where, f"tiers.{t.name}.target", problem) from None
    try:
        check_targets({t.name: t.target for t in tiers}, k)
    except InvalidTargetError as error:
        raise _TiersError(where, "tiers", f"must be {error.expected} (got {error.value})") from None
    by_target = sorted(tiers, key=lambda t: -t.target)
    for better, worse in itertools.pairwise(by_target):
        if worse.sigma <= better.sigma:
            raise _TiersError(
                where,
                f"tiers.{worse.name}.sigma",
                f"must be greater than tier {better.name!r}'s sigma {better.sigma} (its target is lower; "
                f"got {worse.sigma!r}).",
            )
    return Calibration(
        model=file.model.name,
        weights_sha256=file.model.weights_sha256,
        num_classes=file.model.num_classes,
        metric=file.calibration.metric,
        method=file.calibration.method,
        inputs=file.calibration.inputs,
        samples=file.calibration.samples,
        date=file.calibration.date,
        tiers=tiers,
        extra=dict(file.calibration.settings),
    )


def validate(calibration: Calibration, where: str = "Calibration") -> None:
    """Checks a calibration's invariants, as a tiers file; :func:`load_tiers` and :func:`save_tiers` both run it.

    Tier names match :data:`aimod._schema.NAME` (ASCII letters, digits, ``_``, ``-``, ``.``; the tier names of
    ``server.toml``) and are distinct ignoring case; targets lie in ``(1/K, 1]`` and are strictly monotone;
    ``target == 1`` exactly when ``sigma == 0``; sigmas run opposite to the targets (a lower target never gets a
    smaller sigma); ``0 <= low <= predicted <= high <= 1``; every number is a finite number (never a string);
    the model hash has the form ``sha256:<64 hex digits>``; counts are positive integers.

    Args:
        calibration: What to check.
        where: Names the source in the message (:func:`load_tiers` passes the file).

    Raises:
        ConfigError: Naming the first field that breaks an invariant (``tiers.free.sigma``); it is an
            :class:`InvalidArgumentError` too.
    """
    names = [t.name for t in calibration.tiers]
    for i, name in enumerate(names):
        if names.index(name) != i:
            raise _TiersError(where, f"tiers.{name}", f"must be a tier name used once (got {name!r} twice).")
    _checked(calibration.to_dict(), where)


def load_tiers(path: str | Path) -> Calibration:
    """Reads a tiers file and checks it (:func:`validate`); unknown keys and strings for numbers are refused too.

    Raises:
        InvalidArgumentError: For a missing, unreadable or non-UTF-8 file, or invalid TOML.
        ConfigError: Naming the file and the missing or invalid field (``tiers.free.sigma``); it is an
            :class:`InvalidArgumentError` too.
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InvalidArgumentError("tiers file", str(path), "a readable file", str(error)) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise InvalidArgumentError("tiers file", str(path), "valid UTF-8 TOML", str(error)) from None
    return _checked(document, str(path))


def check_model(calibration: Calibration, name: str, weights_sha256: str, num_classes: int) -> None:
    """Refuses a tiers file computed for another model (name, weights or number of classes).

    Raises:
        InvalidArgumentError: Naming the mismatching field, both values shown (hashes are not secrets).
    """
    for name_of_field, recorded, actual in (
        ("model.name", calibration.model, name),
        ("model.weights_sha256", calibration.weights_sha256, weights_sha256),
        ("model.num_classes", calibration.num_classes, num_classes),
    ):
        if recorded != actual:
            raise InvalidArgumentError(
                name_of_field, recorded, f"{actual!r}, the loaded model's", "Re-run aimod calibrate for this model."
            )
