"""Tiers: named utility levels, their calibrated σ, and the TOML file that records them.

An owner asks for tiers by target, the expected agreement of the tier's decisions with the clean model's
(``premium=1.0 standard=0.9 basic=0.7 free=0.5``); calibration finds each tier's σ. The tiers file records,
per tier, σ, the target, the predicted agreement and its 95 % interval, and for the whole file the model's
identity (a SHA-256 of its weights), the calibration inputs and their number, the method and the date. The
server (coming) reads it with :func:`load_tiers`, which checks every invariant (:func:`validate`) so that a
damaged or edited file cannot hand a tenant a better tier than its key grants.

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
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aimod.errors import InvalidArgumentError, InvalidTargetError

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


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_HASH = re.compile(r"sha256:[0-9a-f]{64}")
_TIER_KEYS = {"target", "sigma", "predicted", "low", "high", "sigma_low", "sigma_high"}


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
        if not _NAME.fullmatch(name):
            raise InvalidTargetError("tier name", name, "ASCII letters, digits, '-' and '_' (at most 64)")
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


def validate(calibration: Calibration) -> None:
    """Checks a calibration's invariants; :func:`load_tiers` and :func:`save_tiers` both run it.

    Tier names are ASCII (letters, digits, ``-``, ``_``) and distinct ignoring case; targets lie in
    ``(1/K, 1]`` and are strictly monotone; ``target == 1`` exactly when ``sigma == 0``; sigmas run opposite to
    the targets (a lower target never gets a smaller sigma); ``0 <= low <= predicted <= high <= 1``; every number
    is finite; the model hash has the form ``sha256:<64 hex digits>``; counts are positive.

    Raises:
        InvalidArgumentError: Naming the first field that breaks an invariant.
    """
    if not _HASH.fullmatch(calibration.weights_sha256):
        raise InvalidArgumentError("model.weights_sha256", calibration.weights_sha256, "sha256:<64 hex digits>")
    for label, count in (("model.num_classes", calibration.num_classes), ("calibration.samples", calibration.samples)):
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InvalidArgumentError(label, count, "a positive integer")
    if not calibration.tiers:
        raise InvalidArgumentError("tiers", "no tier", "at least one tier")
    seen: set[str] = set()
    for t in calibration.tiers:
        if not _NAME.fullmatch(t.name) or t.name.lower() in seen:
            raise InvalidArgumentError(
                "tier name", t.name, "ASCII letters, digits, '-' and '_' (at most 64), distinct ignoring case"
            )
        seen.add(t.name.lower())
        numbers: dict[str, object] = {
            "target": t.target,
            "sigma": t.sigma,
            "predicted": t.predicted,
            "low": t.low,
            "high": t.high,
        }
        numbers.update({k: v for k, v in (("sigma_low", t.sigma_low), ("sigma_high", t.sigma_high)) if v is not None})
        for key, number in numbers.items():
            if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(float(number)):
                raise InvalidArgumentError(f"tiers.{t.name}.{key}", number, "a finite number")
        if t.sigma < 0 or (t.target == 1.0) != (t.sigma == 0.0):
            raise InvalidArgumentError(
                f"tiers.{t.name}.sigma", t.sigma, "0 for a target of 1 and > 0 below it", f"Its target is {t.target}."
            )
        if not 0.0 <= t.low <= t.predicted <= t.high <= 1.0:
            raise InvalidArgumentError(
                f"tiers.{t.name}",
                f"low {t.low}, predicted {t.predicted}, high {t.high}",
                "0 <= low <= predicted <= high <= 1",
            )
    check_targets({t.name: t.target for t in calibration.tiers}, calibration.num_classes)
    by_target = sorted(calibration.tiers, key=lambda t: -t.target)
    for better, worse in itertools.pairwise(by_target):
        if worse.sigma <= better.sigma:
            raise InvalidArgumentError(
                f"tiers.{worse.name}.sigma",
                worse.sigma,
                f"greater than tier {better.name!r}'s sigma {better.sigma} (its target is lower)",
            )


def load_tiers(path: str | Path) -> Calibration:
    """Reads a tiers file and checks it with :func:`validate`; unknown keys are refused too.

    Raises:
        InvalidArgumentError: Naming the file and the missing or invalid field.
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
    kinds = {dict: "a table", str: "a string", int: "an integer", (int, float): "a number"}

    def need(table: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
        field = f"{where}.{key}" if where else key
        if key not in table:
            raise InvalidArgumentError(f"{field} in {path}", "nothing", kinds[kind], "Re-run aimod calibrate.")
        value = table[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise InvalidArgumentError(f"{field} in {path}", value, kinds[kind])
        return value

    def only(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise InvalidArgumentError(f"{where} in {path}", unknown, f"only the keys {sorted(allowed)}")

    only(document, {"model", "calibration", "tiers"}, "the top level")
    model = need(document, "model", dict, "")
    calibration = need(document, "calibration", dict, "")
    tiers_table = need(document, "tiers", dict, "")
    only(model, {"name", "weights_sha256", "num_classes"}, "model")
    only(calibration, {"metric", "method", "inputs", "samples", "date", "settings"}, "calibration")
    settings = calibration.get("settings", {})
    if not isinstance(settings, dict):
        raise InvalidArgumentError(f"calibration.settings in {path}", settings, "a table")
    tiers = []
    for name, entry in tiers_table.items():
        where = f"tiers.{name}"
        if not isinstance(entry, dict):
            raise InvalidArgumentError(f"{where} in {path}", entry, "a table")
        only(entry, _TIER_KEYS, where)
        values = {
            k: float(need(entry, k, (int, float), where)) for k in ("target", "sigma", "predicted", "low", "high")
        }
        bounds = {k: float(need(entry, k, (int, float), where)) for k in ("sigma_low", "sigma_high") if k in entry}
        tiers.append(Tier(name=name, **values, **bounds))
    result = Calibration(
        model=need(model, "name", str, "model"),
        weights_sha256=need(model, "weights_sha256", str, "model"),
        num_classes=need(model, "num_classes", int, "model"),
        metric=need(calibration, "metric", str, "calibration"),
        method=need(calibration, "method", str, "calibration"),
        inputs=need(calibration, "inputs", str, "calibration"),
        samples=need(calibration, "samples", int, "calibration"),
        date=need(calibration, "date", str, "calibration"),
        tiers=tuple(tiers),
        extra=dict(settings),
    )
    try:
        validate(result)
    except InvalidArgumentError as error:
        raise InvalidArgumentError(f"{error.name} in {path}", error.value, error.expected) from None
    return result


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
