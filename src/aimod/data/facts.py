"""A short-answer question set for language models: real facts with one unambiguous answer each.

Five categories, 220 items: ``capital`` (60 countries whose capital is not disputed, shared or being moved),
``symbol`` (40 chemical elements), ``opposite`` (40 words with a clear antonym), ``plural`` (40 English
nouns, regular and irregular) and ``arithmetic`` (40 sums, differences and products of small integers, their
answers computed here). Every fact was checked by hand when written; where English allows more than one
correct answer (``little`` for the opposite of ``big``, ``cacti`` or ``cactuses``) all of them are accepted.

Each item carries a ``stem``, the start of the answer sentence (``"The capital of France is"``), which a chat
prompt places at the start of the assistant's reply: instruction-tuned models answer in full sentences, and the
stem makes the next few tokens the answer itself, so normalised exact match (:func:`normalise`) measures
knowledge rather than phrasing. Each item also has four ``choices`` (the answer and three other answers of its
category, in a seeded order) for the multiple-choice, log-likelihood form.

Example:
    >>> items = fact_items()
    >>> len(items), items[0].question, items[0].answer
    (220, 'What is the capital of France?', 'Paris')
    >>> items[0].is_correct(" Paris. It is a large city")
    True
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

__all__ = ["CATEGORIES", "FactItem", "fact_items", "normalise", "spread"]

CATEGORIES = ("capital", "symbol", "opposite", "plural", "arithmetic")

_CAPITALS = """
France=Paris; Japan=Tokyo; Germany=Berlin; Italy=Rome; Spain=Madrid; Portugal=Lisbon; the United Kingdom=London;
Ireland=Dublin; Belgium=Brussels; Austria=Vienna; Poland=Warsaw; the Czech Republic=Prague; Hungary=Budapest;
Greece=Athens; Sweden=Stockholm; Norway=Oslo; Denmark=Copenhagen; Finland=Helsinki; Iceland=Reykjavik;
Russia=Moscow; Ukraine=Kyiv|Kiev; Romania=Bucharest; Bulgaria=Sofia; Serbia=Belgrade; Croatia=Zagreb;
Turkey=Ankara; Egypt=Cairo; Kenya=Nairobi; Nigeria=Abuja; Ethiopia=Addis Ababa; Ghana=Accra; Morocco=Rabat;
Senegal=Dakar; China=Beijing; India=New Delhi; South Korea=Seoul; Thailand=Bangkok; Vietnam=Hanoi;
Venezuela=Caracas; the Philippines=Manila; Jamaica=Kingston; Pakistan=Islamabad; Bangladesh=Dhaka;
Iran=Tehran|Teheran; Iraq=Baghdad; Saudi Arabia=Riyadh; Afghanistan=Kabul; Nepal=Kathmandu;
Mongolia=Ulaanbaatar|Ulan Bator;
Australia=Canberra; New Zealand=Wellington; Canada=Ottawa; the United States=Washington|Washington DC|Washington D.C.;
Mexico=Mexico City; Cuba=Havana; Argentina=Buenos Aires; Brazil=Brasilia|Brasília; Chile=Santiago;
Peru=Lima; Colombia=Bogota|Bogotá
"""

_SYMBOLS = """
hydrogen=H; helium=He; lithium=Li; beryllium=Be; boron=B; carbon=C; nitrogen=N; oxygen=O; fluorine=F; neon=Ne;
sodium=Na; magnesium=Mg; aluminium=Al; silicon=Si; phosphorus=P; sulfur=S; chlorine=Cl; argon=Ar; potassium=K;
calcium=Ca; titanium=Ti; chromium=Cr; manganese=Mn; iron=Fe; cobalt=Co; nickel=Ni; copper=Cu; zinc=Zn;
bromine=Br; krypton=Kr; silver=Ag; tin=Sn; iodine=I; xenon=Xe; tungsten=W; platinum=Pt; gold=Au; mercury=Hg;
lead=Pb; uranium=U
"""

_OPPOSITES = """
hot=cold; up=down; big=small|little; fast=slow; day=night; open=closed|shut; happy=sad|unhappy; true=false;
black=white; left=right; in=out; yes=no; win=lose; first=last; rich=poor; wet=dry; early=late; full=empty;
hard=soft|easy; push=pull; north=south; east=west; inside=outside; above=below|beneath; love=hate; tall=short;
thick=thin; wide=narrow; strong=weak; loud=quiet|soft; clean=dirty; question=answer; buy=sell; begin=end|finish;
give=take|receive; arrive=leave|depart; friend=enemy|foe; visible=invisible; possible=impossible; always=never
"""

_PLURALS = """
mouse=mice; child=children; tooth=teeth; foot=feet; goose=geese; man=men; woman=women; person=people|persons;
ox=oxen; sheep=sheep; deer=deer; fish=fish|fishes; cactus=cacti|cactuses; leaf=leaves; knife=knives;
wolf=wolves; wife=wives; half=halves; shelf=shelves; thief=thieves; box=boxes; fox=foxes; bus=buses|busses;
church=churches; dish=dishes; glass=glasses; city=cities; baby=babies; party=parties; potato=potatoes;
tomato=tomatoes; hero=heroes; crisis=crises; analysis=analyses; phenomenon=phenomena; criterion=criteria;
nucleus=nuclei|nucleuses; dog=dogs; book=books; apple=apples
"""


@dataclass(frozen=True)
class FactItem:
    """One question with its accepted answers and four multiple-choice options."""

    id: str
    """``<category>-<number>``, stable."""
    category: str
    question: str
    stem: str
    """The start of the answer sentence; the answer follows it after a space."""
    answer: str
    """The canonical answer (the correct choice)."""
    aliases: tuple[str, ...]
    """Every accepted answer, the canonical one first."""
    choices: tuple[str, ...]
    """Four options, the answer among them."""

    @property
    def label(self) -> int:
        """Index of the answer in ``choices``."""
        return self.choices.index(self.answer)

    def is_correct(self, completion: str) -> bool:
        """Normalised exact match of a completion of the stem against the accepted answers."""
        return normalise(completion) in {normalise(a) for a in self.aliases}


def normalise(text: str) -> str:
    r"""The answer part of a completion, normalised for exact match.

    Keeps the first non-empty line; if it opens with a double quote, the quoted text; then the text before the
    first sentence end or clause mark (``.`` ``!`` ``?`` ``;`` ``:`` ``(``, a dash between words, and ``,``
    unless inside a number); folds case and accents (letters outside Latin script are dropped); drops a
    leading article, quotes and surrounding spaces.

    Example:
        >>> normalise(' Mice. They are small'), normalise(' "cold" or "chilly"'), normalise("The Bogotá!")
        ('mice', 'cold', 'bogota')
        >>> normalise(" 1,024\n"), normalise(' "children" (plural of child)'), normalise(" Paris—the city of light")
        ('1024', 'children', 'paris')
    """
    text = text.strip().split("\n", 1)[0].strip()
    quoted = re.match(r'^["“]([^"”]*)', text)  # double quotes only: an apostrophe may sit inside the answer
    if quoted:
        text = quoted.group(1)
    text = re.sub(r"(?<=\d),(?=\d)", "", text)  # thousands separators
    text = re.sub(r"\s*[—–]\s*|\s+-\s+", " ; ", text)  # dashes between words end the answer
    text = re.split(r"[.!?;:,](?:\s|$)|[!?;(]", text + " ", maxsplit=1)[0]
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[\"`*\[\]]", "", text).strip().strip("'")
    text = re.sub(r"^(the|a|an)\s+", "", text)
    return re.sub(r"\s+", " ", text).rstrip(".").strip()


def _pairs(table: str) -> list[tuple[str, list[str]]]:
    """``"France=Paris; the United States=Washington|Washington DC"`` -> [(key, accepted answers)]."""
    out = []
    for entry in table.replace("\n", " ").split(";"):
        if entry.strip():
            key, _, answers = entry.partition("=")
            out.append((key.strip(), [a.strip() for a in answers.split("|")]))
    return out


def _arithmetic(rng: random.Random) -> list[tuple[str, str, str]]:
    """40 distinct (question, stem, answer): sums, non-negative differences and products; computed, not typed."""
    out: dict[str, tuple[str, str, str]] = {}
    while len(out) < 40:
        kind = len(out) % 3
        if kind == 2:
            a, b = rng.randint(2, 12), rng.randint(2, 12)
            op, value = "×", a * b
        else:
            a, b = rng.randint(2, 49), rng.randint(2, 49)
            if kind == 0:
                op, value = "+", a + b
            else:
                a, b = max(a, b), min(a, b)
                op, value = "-", a - b
        question = f"What is {a} {op} {b}?"
        out.setdefault(question, (question, f"{a} {op} {b} =", str(value)))
    return list(out.values())


@cache
def fact_items() -> tuple[FactItem, ...]:
    """All 220 items, in a fixed order (capitals, symbols, opposites, plurals, arithmetic)."""
    rng = random.Random(20261124)
    rows: list[tuple[str, str, str, list[str]]] = []  # category, question, stem, aliases
    for country, answers in _pairs(_CAPITALS):
        rows.append(("capital", f"What is the capital of {country}?", f"The capital of {country} is", answers))
    for element, answers in _pairs(_SYMBOLS):
        stem = f"The chemical symbol for {element} is"
        rows.append(("symbol", f"What is the chemical symbol for {element}?", stem, answers))
    for word, answers in _pairs(_OPPOSITES):
        rows.append(("opposite", f'What is the opposite of "{word}"?', f'The opposite of "{word}" is', answers))
    for word, answers in _pairs(_PLURALS):
        rows.append(("plural", f'What is the plural of "{word}"?', f'The plural of "{word}" is', answers))
    for question, stem, answer in _arithmetic(rng):
        rows.append(("arithmetic", question, stem, [answer]))

    by_category: dict[str, list[str]] = {}
    for category, _, _, aliases in rows:
        by_category.setdefault(category, []).append(aliases[0])
    items = []
    counters = dict.fromkeys(CATEGORIES, 0)
    for category, question, stem, aliases in rows:
        counters[category] += 1
        answer = aliases[0]
        accepted = {normalise(a) for a in aliases}
        pool = sorted({a for a in by_category[category] if normalise(a) not in accepted})
        choices = [answer, *rng.sample(pool, 3)]
        rng.shuffle(choices)
        items.append(
            FactItem(
                id=f"{category}-{counters[category]:03d}",
                category=category,
                question=question,
                stem=stem,
                answer=answer,
                aliases=tuple(aliases),
                choices=tuple(choices),
            )
        )
    return tuple(items)


def spread(items: Sequence[FactItem], count: int | None) -> tuple[FactItem, ...]:
    """``count`` items evenly spaced through ``items`` (every category, not only the first); all when None.

    Example:
        >>> sorted({i.category for i in spread(fact_items(), 10)}) == sorted(CATEGORIES)
        True
    """
    n = len(items) if count is None else min(count, len(items))
    return tuple(items[int(i * len(items) / n)] for i in range(n))
