from __future__ import annotations

import re
from collections import Counter

from aimod.data.facts import CATEGORIES, fact_items, normalise


def test_the_fact_set_has_220_distinct_items_in_five_categories() -> None:
    items = fact_items()
    assert len(items) == 220 >= 200
    assert Counter(i.category for i in items) == {
        "capital": 60,
        "symbol": 40,
        "opposite": 40,
        "plural": 40,
        "arithmetic": 40,
    }
    assert set(CATEGORIES) == {i.category for i in items}
    assert len({i.id for i in items}) == len({i.question for i in items}) == 220
    assert fact_items() is fact_items()  # built once


def test_every_item_is_self_consistent() -> None:
    for item in fact_items():
        assert item.answer == item.aliases[0]
        assert item.choices[item.label] == item.answer
        assert len(set(item.choices)) == len(item.choices) == 4
        accepted = {normalise(a) for a in item.aliases}
        assert sum(normalise(c) in accepted for c in item.choices) == 1, item  # no distractor is also right
        assert item.is_correct(f" {item.answer}.")
        assert item.is_correct(f' "{item.answer}" is the answer')
        assert item.question.endswith("?")


def test_arithmetic_answers_are_computed_correctly() -> None:
    for item in (i for i in fact_items() if i.category == "arithmetic"):
        a, op, b = re.fullmatch(r"What is (\d+) ([-+×]) (\d+)\?", item.question).groups()
        expected = {"+": int(a) + int(b), "-": int(a) - int(b), "×": int(a) * int(b)}[op]
        assert int(item.answer) == expected >= 0


def test_known_facts_spot_checks() -> None:
    by_question = {i.question: i for i in fact_items()}
    assert by_question["What is the chemical symbol for gold?"].answer == "Au"
    assert by_question["What is the chemical symbol for tungsten?"].answer == "W"
    assert by_question["What is the capital of Australia?"].answer == "Canberra"
    assert by_question['What is the plural of "cactus"?'].aliases == ("cacti", "cactuses")
    assert by_question['What is the opposite of "big"?'].is_correct(" little")


def test_normalise_takes_the_answer_out_of_a_sentence() -> None:
    assert normalise(" Paris. It is a city") == "paris"
    assert normalise(' "cold" or "chilly"') == "cold"
    assert normalise(" the Bogotá!") == "bogota"
    assert normalise(" Washington, D.C.") == "washington"
    assert normalise(" 1,024\n\nmore") == "1024"
    assert normalise(" Addis Ababa (Ethiopia)") == "addis ababa"
    assert normalise("") == ""


def test_normalise_handles_dashes_colons_blank_lines_and_apostrophes() -> None:
    assert normalise(" Paris—the City of Light") == "paris"
    assert normalise(" \n\nParis") == "paris"
    assert normalise(" Paris: the city") == "paris"
    assert normalise(' "children\'s"') == "children's"
