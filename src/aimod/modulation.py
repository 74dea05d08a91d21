r"""The modulation spec: what to do to a model's logits.

A :class:`Modulation` is a frozen value with two parts:

* ``sigma`` (utility, set by the model owner): the std of zero-mean Gaussian noise added to every logit;
* ``focus`` (set by the user): class id or name -> signed std of a one-signed half-normal added to that
  class only (``+`` promotes the class, ``-`` suppresses it).

It is validated when built, so the operator never checks it again. Its one string form, used by the Python API
(every function that takes a modulation takes this string too), the command line and lm-eval's model arguments
(``modulation=sigma=1;paris=+4``: there ``;`` separates items too, since lm-eval splits its arguments on
commas), is a comma-separated list of ``key=value`` items::

    sigma=2                         utility only
    sigma=1.5, person=+3, car=-1    utility plus focus (signs are required on focus strengths)
    3=+2                            a bare integer key is a class id
    "traffic light"=+2, "sigma"=-1  quote names with commas, '=', quotes, or that look like ids or 'sigma'
    2.5                             a lone number is sigma
    (empty)                         the identity: no noise

Inside quotes, ``\\"`` and ``\\\\`` escape a quote and a backslash. ``str(m)`` gives the canonical form and
``Modulation.parse(str(m)) == m`` always holds. :func:`parse_names` reads names alone in the same syntax (a
focus sweep's classes or words, whose strengths come from the sweep).

Example:
    >>> m = Modulation.parse("sigma=2, person=+3, car=-1")
    >>> m.sigma, dict(m.focus)
    (2.0, {'person': 3.0, 'car': -1.0})
    >>> str(m)
    'sigma=2.0, person=+3.0, car=-1.0'
    >>> Modulation(sigma=-1)
    Traceback (most recent call last):
    ...
    aimod.errors.InvalidModulationError: `sigma` must be a finite number >= 0 ...
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Union

from aimod.errors import InvalidModulationError, UnknownClassError

__all__ = ["ClassKey", "Id2Label", "Modulation", "ResolvedModulation", "parse_names", "resolve_class"]

ClassKey = Union[int, str]
"""A focus key: a class (or token) id, or a class name resolved through ``id2label``."""

Id2Label = Union[Mapping[int, str], Sequence[str]]
"""Class names by id: a mapping as in Hugging Face configs, or a list indexed by id."""

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INT = re.compile(r"[0-9]+")
_BARE_NAME_FORBIDDEN = set(',="\\')


def _as_float(name: str, value: object, expected: str, fix: str) -> float:
    """Converts a real number (not a bool) to float, or raises InvalidModulationError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidModulationError(name, value, expected, fix)
    number = float(value)
    if not math.isfinite(number):
        raise InvalidModulationError(name, value, expected, fix)
    return number


@dataclass(frozen=True, eq=False)
class Modulation:
    """What to do to a model's logits: lower its utility, shift its focus, or both.

    Args:
        sigma: Utility: std of the zero-mean Gaussian added to every logit, in logit units. 0 disables it.
        focus: Focus: class id (int >= 0) or name (non-empty str) -> signed std of the half-normal added to
            that class (+ promotes, - suppresses, 0 does nothing).

    Raises:
        InvalidModulationError: If sigma is negative, NaN or infinite, or a focus key or strength is invalid.

    Example:
        >>> Modulation(sigma=1.0, focus={"cat": 2.0}).is_identity
        False
        >>> Modulation().is_identity
        True
    """

    sigma: float = 0.0
    """Utility: std of the zero-mean Gaussian added to every logit, in logit units. 0 disables it."""
    focus: Mapping[ClassKey, float] = field(default_factory=dict)
    """Focus: class id or name -> signed std of the half-normal added to it (+ promote, - suppress)."""

    def __post_init__(self) -> None:
        sigma = _as_float(
            "sigma",
            self.sigma,
            "a finite number >= 0 (std of the utility noise, in logit units)",
            "Use 0 for no utility noise.",
        )
        if sigma < 0:
            raise InvalidModulationError(
                "sigma",
                self.sigma,
                "a finite number >= 0 (std of the utility noise, in logit units)",
                "Use 0 for no utility noise.",
            )
        object.__setattr__(self, "sigma", sigma + 0.0)  # +0.0 turns -0.0 into 0.0
        if not isinstance(self.focus, Mapping):
            raise InvalidModulationError(
                "focus",
                self.focus,
                "a mapping from class id or name to a signed std",
                'For example focus={"person": +3.0, 7: -1.0}.',
            )
        clean: dict[ClassKey, float] = {}
        for key, strength in self.focus.items():
            clean[_check_key(key)] = _as_float(
                f"focus[{key!r}]",
                strength,
                "a finite number (signed std of the half-normal: + promotes, - suppresses)",
                "Use for example +2.0 to promote the class or -2.0 to suppress it.",
            )
        object.__setattr__(self, "focus", MappingProxyType(clean))

    # -- value semantics -------------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Modulation):
            return NotImplemented
        return self.sigma == other.sigma and dict(self.focus) == dict(other.focus)

    def __hash__(self) -> int:
        return hash((self.sigma, frozenset(self.focus.items())))

    def __reduce__(self) -> tuple[type[Modulation], tuple[float, dict[ClassKey, float]]]:
        # the read-only focus view cannot be pickled; rebuild from a plain dict (pickle, deepcopy, torch.save)
        return (Modulation, (self.sigma, dict(self.focus)))

    def __repr__(self) -> str:
        return f"Modulation(sigma={self.sigma!r}, focus={dict(self.focus)!r})"

    def __str__(self) -> str:
        return self.to_string()

    @property
    def is_identity(self) -> bool:
        """True when the modulation adds no noise at all (sigma 0 and every focus strength 0)."""
        return self.sigma == 0.0 and all(v == 0.0 for v in self.focus.values())

    # -- conversions -----------------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str, *, separators: str = ",") -> Modulation:
        """Parses the string form (see the module docstring); ``separators=",;"`` also splits on ``;``.

        Raises:
            InvalidModulationError: If the text is not of that form; the message points at the bad item.
        """
        if not isinstance(text, str):
            raise InvalidModulationError("modulation", text, "a string such as 'sigma=2, person=+3'")
        stripped = text.strip()
        if not stripped:
            return cls()
        if _NUMBER.fullmatch(stripped):
            return cls(sigma=float(stripped))
        sigma: float | None = None
        focus: dict[ClassKey, float] = {}
        for item in _split_items(stripped, separators):
            key, value = _split_item(item)
            if isinstance(key, str) and key.startswith("\0bare:") and key[6:].strip().lower() == "sigma":
                if sigma is not None:
                    raise InvalidModulationError("modulation", text, "at most one 'sigma=' item")
                if not _NUMBER.fullmatch(value) or float(value) < 0:
                    raise InvalidModulationError("sigma", value, "a finite number >= 0", "Write for example 'sigma=2'.")
                sigma = float(value)
                continue
            name = _unwrap_key(key)
            if not _NUMBER.fullmatch(value) or value[0] not in "+-":
                unsigned = bool(_NUMBER.fullmatch(value))
                raise InvalidModulationError(
                    f"focus strength of {name!r}",
                    value,
                    "a finite signed number such as +3 (promote) or -1.5 (suppress)",
                    "The sign is required so the direction is never implicit." if unsigned else "",
                )
            if name in focus:
                raise InvalidModulationError(
                    "modulation", text, "a string naming each focus class once", f"{name!r} appears twice."
                )
            focus[name] = float(value)
        return cls(sigma=sigma or 0.0, focus=focus)

    def to_string(self) -> str:
        """The canonical compact string form; ``Modulation.parse(m.to_string()) == m``."""
        items = []
        if self.sigma != 0.0 or not self.focus:
            items.append(f"sigma={self.sigma!r}")
        for key, strength in self.focus.items():
            sign = "-" if math.copysign(1.0, strength) < 0 else "+"
            items.append(f"{_format_key(key)}={sign}{abs(strength)!r}")
        return ", ".join(items)

    @classmethod
    def coerce(cls, value: Modulation | str | float) -> Modulation:
        """Accepts a Modulation, its string form or a bare sigma.

        Raises:
            InvalidModulationError: For anything else (a dict is refused, with the string form to write instead).
        """
        if isinstance(value, Modulation):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        if isinstance(value, Mapping):
            try:
                hint = f"here {str(cls(sigma=value.get('sigma', 0.0), focus=value.get('focus', {})))!r}"
            except (InvalidModulationError, AttributeError, TypeError):
                hint = "for example 'sigma=2, person=+3'"
            raise InvalidModulationError(
                "modulation",
                dict(value),
                "a Modulation, its string form or a sigma, not a dict",
                f"Write the string form ({hint}), or Modulation(sigma=..., focus={{...}}).",
            )
        return cls(sigma=value)  # validated in __post_init__

    def with_sigma(self, sigma: float) -> Modulation:
        """A copy with another utility sigma and the same focus."""
        return Modulation(sigma=sigma, focus=self.focus)

    def resolve(self, num_classes: int, id2label: Id2Label | None = None) -> ResolvedModulation:
        """Turns class names into ids for a model with ``num_classes`` classes.

        Raises:
            UnknownClassError: If a name is not in ``id2label`` (close matches are listed) or an id is
                out of range.
            InvalidModulationError: If two keys name the same class.
        """
        ids: list[int] = []
        strengths: list[float] = []
        seen: dict[int, ClassKey] = {}
        for key, strength in self.focus.items():
            class_id = resolve_class(key, num_classes, id2label)
            if class_id in seen:
                raise InvalidModulationError(
                    "focus",
                    dict(self.focus),
                    "a mapping that names each class once",
                    f"{seen[class_id]!r} and {key!r} are the same class (id {class_id}); keep one.",
                )
            seen[class_id] = key
            if strength != 0.0:
                ids.append(class_id)
                strengths.append(strength)
        return ResolvedModulation(self.sigma, tuple(ids), tuple(strengths))


@dataclass(frozen=True)
class ResolvedModulation:
    """A modulation with every focus key turned into a class id; zero-strength entries dropped.

    Example:
        >>> Modulation(sigma=1.0, focus={"b": -2.0}).resolve(3, ["a", "b", "c"])
        ResolvedModulation(sigma=1.0, class_ids=(1,), strengths=(-2.0,))
    """

    sigma: float
    """Std of the utility noise on every class."""
    class_ids: tuple[int, ...]
    """Focused class ids, each once."""
    strengths: tuple[float, ...]
    """Signed std of the half-normal on each focused class, aligned with ``class_ids``; never 0."""

    @property
    def is_identity(self) -> bool:
        """True when no noise is added."""
        return self.sigma == 0.0 and not self.class_ids


def resolve_class(key: ClassKey, num_classes: int, id2label: Id2Label | None = None) -> int:
    """Returns the class id that ``key`` names.

    An int is an id and must be in ``[0, num_classes)``. A str is looked up in ``id2label``: exact match
    first, then a unique case-insensitive match.

    Raises:
        UnknownClassError: With close matches when the name is unknown.

    Example:
        >>> resolve_class("Cat", 3, {0: "dog", 1: "cat", 2: "bird"})
        1
    """
    if isinstance(key, int):
        if 0 <= key < num_classes:
            return key
        raise UnknownClassError("focus class id", key, f"an int in [0, {num_classes})", "Class ids start at 0.")
    names = _names(id2label)
    if not names:
        raise UnknownClassError(
            "focus class",
            key,
            "a class id (int) because this model has no class names",
            "Pass id2label=... to name classes, or use integer ids.",
        )
    if key in names:
        return names[key]
    folded = [n for n in names if n.casefold() == key.casefold()]
    if len(folded) == 1:
        return names[folded[0]]
    close = difflib.get_close_matches(key, list(names), n=3, cutoff=0.6)
    hint = f"Did you mean {', '.join(map(repr, close))}?" if close else "Check the spelling."
    if _INT.fullmatch(key):
        hint += f" For class id {key}, write it without quotes."
    raise UnknownClassError("focus class", key, f"one of the model's {len(names)} class names", hint)


def _names(id2label: Id2Label | None) -> dict[str, int]:
    if id2label is None:
        return {}
    items: Iterable[tuple[int, str]] = (
        ((int(k), v) for k, v in id2label.items()) if isinstance(id2label, Mapping) else enumerate(id2label)
    )
    names: dict[str, int] = {}
    for class_id, name in items:
        names.setdefault(str(name), class_id)
    return names


def _check_key(key: object) -> ClassKey:
    if isinstance(key, bool) or not isinstance(key, (int, str)):
        raise InvalidModulationError("focus key", key, "a class id (int >= 0) or a class name (non-empty str)")
    if isinstance(key, int):
        if key < 0:
            raise InvalidModulationError("focus key", key, "a class id >= 0", "Class ids start at 0.")
        return int(key)
    if not key.strip():
        raise InvalidModulationError("focus key", key, "a non-empty class name")
    return key


# -- the compact string form ------------------------------------------------------------------------------


def parse_names(text: str) -> list[ClassKey]:
    """Names alone in the string form's syntax: ``'person, "traffic, light", 3'`` (a bare integer is an id).

    Raises:
        InvalidModulationError: For an empty list, or an item with a strength.

    Example:
        >>> parse_names('person, "traffic, light", 3')
        ['person', 'traffic, light', 3]
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidModulationError("names", text, "one or more names such as 'person' or 'paris, london'")
    names: list[ClassKey] = []
    for item in _split_items(text.strip()):
        try:
            _split_item(item)
        except InvalidModulationError:  # no '=' outside quotes: a name alone, as it should be
            key, _ = _split_item(f"{item.strip()}=+1")
            names.append(_unwrap_key(key))
            continue
        raise InvalidModulationError(
            "names", text, "names without strengths", f"Remove the strength from {item.strip()!r}."
        )
    return names


def _split_items(text: str, separators: str = ",") -> list[str]:
    """Splits on ``separators`` outside quotes."""
    items, current, quoted, escaped = [], [], False, False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\" and quoted:
            current.append(char)
            escaped = True
        elif char == '"':
            current.append(char)
            quoted = not quoted
        elif char in separators and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted:
        raise InvalidModulationError("modulation", text, "a string with balanced double quotes")
    items.append("".join(current))
    for item in items:
        if not item.strip():
            raise InvalidModulationError(
                "modulation", text, "comma-separated key=value items with none empty", "Remove the extra comma."
            )
    return items


def _split_item(item: str) -> tuple[str, str]:
    r"""Returns (key, value) where key is '\\0bare:NAME' or '\\0quoted:NAME'."""
    item = item.strip()
    if item.startswith('"'):
        name, i, escaped = [], 1, False
        while i < len(item):
            char = item[i]
            if escaped:
                name.append(char)
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                break
            else:
                name.append(char)
            i += 1
        rest = item[i + 1 :].strip()
        if not rest.startswith("="):
            raise InvalidModulationError("modulation item", item, 'of the form "name"=+2')
        return "\0quoted:" + "".join(name), rest[1:].strip()
    key, sep, value = item.partition("=")
    if not sep or "=" in value:
        raise InvalidModulationError("modulation item", item, "of the form key=value, e.g. sigma=2 or person=+3")
    if any(c in _BARE_NAME_FORBIDDEN for c in key):
        raise InvalidModulationError(
            "modulation item", item, "a bare name without quotes, commas or '='", 'Quote it: "my, name"=+2.'
        )
    return "\0bare:" + key.strip(), value.strip()


def _unwrap_key(key: str) -> ClassKey:
    kind, _, name = key[1:].partition(":")
    if kind == "bare" and _INT.fullmatch(name):
        return int(name)
    if not name.strip():
        raise InvalidModulationError("focus key", name, "a non-empty class name")
    return name


def _format_key(key: ClassKey) -> str:
    if isinstance(key, int):
        return str(key)
    needs_quotes = (
        any(c in _BARE_NAME_FORBIDDEN for c in key)
        or key != key.strip()
        or _INT.fullmatch(key) is not None
        or key.strip().lower() == "sigma"
    )
    if not needs_quotes:
        return key
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
