from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aimod import InvalidModulationError, Modulation, UnknownClassError
from aimod.modulation import resolve_class

names = st.text(min_size=1, max_size=12).filter(lambda s: s.strip() != "")
keys = st.one_of(st.integers(0, 10_000), names)
strengths = st.floats(-50, 50, allow_nan=False, allow_infinity=False)
modulations = st.builds(
    Modulation,
    sigma=st.floats(0, 100, allow_nan=False, allow_infinity=False),
    focus=st.dictionaries(keys, strengths, max_size=5),
)


@given(modulations)
def test_string_form_round_trips(m: Modulation) -> None:
    assert Modulation.parse(str(m)) == m


@given(modulations)
def test_coerce_takes_the_string_form_and_semicolons_separate_when_asked(m: Modulation) -> None:
    assert Modulation.coerce(str(m)) == m
    assert Modulation.coerce(m) is m
    if not any(isinstance(k, str) and ";" in k for k in m.focus):
        assert Modulation.parse(str(m).replace(", ", ";"), separators=",;") == m


def test_the_dict_form_is_gone_with_an_error_that_shows_the_string_form() -> None:
    assert not hasattr(Modulation, "from_dict")
    assert not hasattr(Modulation, "to_dict")
    with pytest.raises(InvalidModulationError, match=re.escape("'sigma=2.0, person=+3.0'")):
        Modulation.coerce({"sigma": 2, "focus": {"person": 3}})  # type: ignore[arg-type]


def test_parse_names_reads_the_same_name_syntax_without_strengths() -> None:
    from aimod.modulation import parse_names

    assert parse_names('person, "traffic, light", 3, "7"') == ["person", "traffic, light", 3, "7"]
    for bad in ("", "person=+3", 'a, "b'):
        with pytest.raises(InvalidModulationError):
            parse_names(bad)


def test_parse_examples() -> None:
    m = Modulation.parse('sigma=1.5, person=+3, car=-1, 7=+2, "traffic, light"=+0.5, "7"=-1')
    assert m.sigma == 1.5
    assert dict(m.focus) == {"person": 3.0, "car": -1.0, 7: 2.0, "traffic, light": 0.5, "7": -1.0}
    assert Modulation.parse("2.5") == Modulation(sigma=2.5)
    assert Modulation.parse("  ") == Modulation()
    assert Modulation.parse('"sigma"=+1') == Modulation(focus={"sigma": 1.0})
    assert Modulation.parse('"a \\"quoted\\" name"=-2').focus == {'a "quoted" name': -2.0}


def test_equality_ignores_focus_order_and_hash_agrees() -> None:
    a = Modulation(sigma=1, focus={"a": 1.0, "b": -2.0})
    b = Modulation(sigma=1.0, focus={"b": -2.0, "a": 1})
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1


def test_modulation_is_frozen_and_focus_read_only() -> None:
    m = Modulation(sigma=1.0, focus={"a": 1.0})
    with pytest.raises(AttributeError):
        m.sigma = 2.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        m.focus["a"] = 3.0  # type: ignore[index]


def test_is_identity() -> None:
    assert Modulation().is_identity
    assert Modulation(focus={"a": 0.0}).is_identity
    assert not Modulation(sigma=1e-9).is_identity
    assert not Modulation(focus={3: -0.1}).is_identity


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"sigma": -1.0}, "finite number >= 0"),
        ({"sigma": math.nan}, "finite number >= 0"),
        ({"sigma": math.inf}, "finite number >= 0"),
        ({"sigma": "2"}, "finite number >= 0"),
        ({"sigma": True}, "finite number >= 0"),
        ({"focus": {"a": math.nan}}, "finite number"),
        ({"focus": {"a": "big"}}, "finite number"),
        ({"focus": {"": 1.0}}, "non-empty class name"),
        ({"focus": {"  ": 1.0}}, "non-empty class name"),
        ({"focus": {-1: 1.0}}, "class id >= 0"),
        ({"focus": {1.5: 1.0}}, "class id (int >= 0) or a class name"),
        ({"focus": [("a", 1.0)]}, "a mapping"),
    ],
    ids=str,
)
def test_invalid_values_raise_with_what_was_given(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(InvalidModulationError, match="must be") as info:
        Modulation(**kwargs)  # type: ignore[arg-type]
    assert fragment in str(info.value)
    assert "got" in str(info.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("sigma=-1", "finite number >= 0"),
        ("sigma=abc", "finite number >= 0"),
        ("sigma=nan", "finite number >= 0"),
        ("person=3", "signed number"),
        ("person=+inf", "signed number"),
        ("person=+1_000", "signed number"),
        ("a=+1, a=-1", "each focus class once"),
        ("sigma=1, sigma=2", "at most one"),
        ("=+2", "non-empty class name"),
        ("a=+1,,b=+2", "none empty"),
        ('"abc=+1', "balanced double quotes"),
        ("abc", "key=value"),
        ("a=b=+1", "key=value"),
        ('"x" +1', '"name"=+2'),
    ],
    ids=str,
)
def test_invalid_strings_raise(text: str, fragment: str) -> None:
    with pytest.raises(InvalidModulationError) as info:
        Modulation.parse(text)
    assert fragment in str(info.value)


def test_semicolons_are_plain_characters_unless_asked_for() -> None:
    assert Modulation.parse('"a;b"=+1') == Modulation(focus={"a;b": 1.0})
    assert Modulation.parse('"a;b"=+1;c=+2', separators=",;") == Modulation(focus={"a;b": 1.0, "c": 2.0})


LABELS = ["person", "car", "traffic light", "bus"]


def test_resolve_names_ids_and_case() -> None:
    r = Modulation(sigma=2.0, focus={"Person": 3.0, 1: -1.0, "bus": 0.0}).resolve(4, LABELS)
    assert r.class_ids == (0, 1)  # zero strength dropped
    assert r.strengths == (3.0, -1.0)
    assert resolve_class("traffic light", 4, dict(enumerate(LABELS))) == 2


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(UnknownClassError, match="Did you mean 'person'") as info:
        Modulation(focus={"persn": 1.0}).resolve(4, LABELS)
    assert isinstance(info.value, LookupError)
    assert isinstance(info.value, ValueError)


def test_unknown_id_and_missing_names() -> None:
    with pytest.raises(UnknownClassError, match=r"\[0, 4\)"):
        Modulation(focus={4: 1.0}).resolve(4, LABELS)
    with pytest.raises(UnknownClassError, match="id2label"):
        Modulation(focus={"person": 1.0}).resolve(4)
    with pytest.raises(UnknownClassError, match="write it without quotes"):
        Modulation(focus={"2": 1.0}).resolve(4, LABELS)


def test_name_and_id_of_the_same_class_is_a_duplicate() -> None:
    with pytest.raises(InvalidModulationError, match="same class"):
        Modulation(focus={"car": 1.0, 1: 2.0}).resolve(4, LABELS)


def test_with_sigma_keeps_focus() -> None:
    m = Modulation(sigma=1.0, focus={"a": 2.0}).with_sigma(3.0)
    assert m == Modulation(sigma=3.0, focus={"a": 2.0})
