"""Build ``app/resources/routing_reference.jsonl``: a routing dataset from public reference data, never used to fit.

``ember bench routing --dataset app/resources/routing_reference.jsonl --split all`` reports the router on questions
from a different source than ``routing_questions.jsonl`` (the data the shipped weights are fitted on). Every item has
``"split": "all"``, a ``category`` (fact, arithmetic, spelling, reasoning, units, as in the training data) and a
``source``: the repository and file its fact comes from, or ``generated`` for computed items.

The raw data lies in ``app/resources/reference_sources/``, one small JSON per source holding only the fields used
here, extracted from these files (``--extract DIR`` redoes the extraction from the original files in ``DIR``):

- ``periodic_table.json``: Bowserinator/Periodic-Table-JSON, ``PeriodicTableJSON.json`` at commit
  ea41119626581350fdcdd9c873de233645a43023 (name, symbol, number of elements 1-56 and a few well-known heavier ones).
- ``countries.json``: mledoze/countries, ``countries.json`` at commit 5e9f370050f83ad2ba4cb885f75d66114badf72c
  (UN members of at least 100,000 km² or in Europe: name, capital, region, subregion, currencies, languages,
  borders, area).
- ``us_states.json``: CivilServiceUSA/us-states, ``data/states.json`` at commit
  5cdcfb7ad441104123f3fdbe719cfccfc82a4570 (name, postal code, nickname, capital, admission date and number).
- ``planets.json``: devstronomy/nasa-data-scraper, ``data/json/planets.json`` at commit
  f311254c444585e40a8ebbff76ef2b8d785af438 (NASA's planetary fact sheet: order, name, diameter, moons, orbital
  period, length of day; Pluto dropped).
- ``words.json``: dariusk/corpora, ``data/animals/common.json`` and ``data/foods/fruits.json`` at commit
  cf30ca27ab176b63623af1ddcfa2447ac07305ba (the one-word entries).

Questions that ``routing_questions.jsonl`` already asks are left out: the same prompt, or a fact question about the
same entity and the same kind of fact (no "capital of France" because the training data asks it). Answers are
checked by :func:`app.bench.routing.is_correct` (any answer as a whole word, case-insensitive), so numbers list their
digits and words, names their accent-free spelling, and letter questions never have "a" or "i" for an answer.

``python -m app.bench.reference_dataset`` rewrites the JSONL; the output depends only on the source files and the
fixed seed, so it is byte-identical on every run (``--check`` only compares).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
SOURCES = RESOURCES / "reference_sources"
OUTPUT = RESOURCES / "routing_reference.jsonl"
TRAINING = RESOURCES / "routing_questions.jsonl"
SEED = 20261202

SRC_ELEMENTS = "Bowserinator/Periodic-Table-JSON:PeriodicTableJSON.json"
SRC_COUNTRIES = "mledoze/countries:countries.json"
SRC_STATES = "CivilServiceUSA/us-states:data/states.json"
SRC_PLANETS = "devstronomy/nasa-data-scraper:data/json/planets.json"
SRC_ANIMALS = "dariusk/corpora:data/animals/common.json"
SRC_FRUITS = "dariusk/corpora:data/foods/fruits.json"
GENERATED = "generated"

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
         "seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
ORDINALS = ("first second third fourth fifth sixth seventh eighth").split()
ORDINAL_SUFFIX = ("1st", "2nd", "3rd", "4th", "5th", "6th", "7th", "8th")
# Letters that a reply holds as a whole word without meaning them ("a", "I", "it's", "don't", "I'm", "I'd"): never
# the answer of a letter question. Symbols and postal codes that are English words: never an answer either.
NOT_LETTER_ANSWERS = frozenset("aistmd")
WORD_SYMBOLS = frozenset({"as", "at", "be", "he", "in", "no", "am", "ho", "la", "re", "ne", "ba", "pa"})
WORD_CODES = frozenset({"IN", "OR", "ME", "HI", "OH", "OK", "ID", "LA", "MA", "PA", "DE", "AL", "MO", "NE", "CO",
                        "MI", "WA", "GA"})


@dataclass
class Question:
    """One dataset line, plus what the training-overlap rule looks at (not written)."""

    prompt: str
    answers: list[str]
    category: str
    source: str
    entity: tuple[str, ...] = ()  # a fact question's subjects (country, element and its symbol, ...)
    kind: tuple[str, ...] = field(default_factory=tuple)  # words naming the kind of fact ("currency", ...)

    def line(self) -> str:
        return json.dumps({"prompt": self.prompt, "answers": self.answers, "category": self.category,
                           "split": "all", "source": self.source}, ensure_ascii=False)


# --- answers ---------------------------------------------------------------------------------------------------

def number_words(n: int) -> list[str]:
    """English words for 0 <= n < 1000 ("twenty-one" and "twenty one"); [] outside that range."""
    if n < 0 or n >= 1000:
        return []
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        tens, ones = divmod(n, 10)
        return [_TENS[tens]] if not ones else [f"{_TENS[tens]}-{_ONES[ones]}", f"{_TENS[tens]} {_ONES[ones]}"]
    hundreds, rest = divmod(n, 100)
    head = f"{_ONES[hundreds]} hundred"
    if not rest:
        return [head]
    return [f"{head} and {w}" for w in number_words(rest)] + [f"{head} {w}" for w in number_words(rest)]


def number_answers(n: int) -> list[str]:
    """Every accepted form of a whole number: digits, digits with thousands commas, words."""
    forms = [str(n)]
    if abs(n) >= 1000:
        forms.append(f"{n:,}")
    return forms + number_words(n)


def fold(text: str) -> str:
    """``text`` without accents (Bogotá -> Bogota, złoty -> zloty)."""
    text = text.replace("ł", "l").replace("Ł", "L").replace("ʻ", "'")
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def with_variants(answers: Iterable[str]) -> list[str]:
    """The answers, each followed by its accent-free spelling when that differs; duplicates dropped."""
    out: list[str] = []
    for a in answers:
        for form in (a, fold(a)):
            if form and form.lower() not in {o.lower() for o in out}:
                out.append(form)
    return out


def ordinal_answers(n: int) -> list[str]:
    return [ORDINALS[n - 1], ORDINAL_SUFFIX[n - 1], str(n)] + number_words(n)


# --- the training overlap rule ---------------------------------------------------------------------------------

class Training:
    """The prompts of ``routing_questions.jsonl``, for the overlap rule."""

    def __init__(self, path: Path = TRAINING) -> None:
        self.prompts = [json.loads(line)["prompt"] for line in path.read_text(encoding="utf-8").splitlines()
                        if line.strip()]
        self.lower = {p.strip().lower() for p in self.prompts}

    def overlaps(self, q: Question) -> bool:
        """True when the training data asks the same prompt, or the same kind of fact about the same entity."""
        if q.prompt.strip().lower() in self.lower:
            return True
        if not q.entity or not q.kind:
            return False
        ent = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, q.entity)) + r")(?!\w)", re.I)
        return any(ent.search(p) and any(k.lower() in p.lower() for k in q.kind) for p in self.prompts)


def pick(rng: random.Random, pool: Sequence[Any], n: int, training: Training,
         make: Callable[[Any], Question | None]) -> list[Question]:
    """Up to ``n`` questions made from a shuffled copy of ``pool``, skipping the ones the training data covers."""
    order = list(pool)
    rng.shuffle(order)
    out: list[Question] = []
    for x in order:
        if len(out) >= n:
            break
        q = make(x)
        if q is not None and not training.overlaps(q) and q.prompt not in {o.prompt for o in out}:
            out.append(q)
    return out


# --- elements --------------------------------------------------------------------------------------------------

ELEMENT_NAMES = {"Aluminium": ["aluminium", "aluminum"], "Sulfur": ["sulfur", "sulphur"],
                 "Cesium": ["caesium", "cesium"]}


def element_names(e: dict[str, Any]) -> list[str]:
    return ELEMENT_NAMES.get(e["name"], [e["name"].lower()])


def _ids(e: dict[str, Any]) -> tuple[str, ...]:
    """What names an element in a training prompt: its name, symbol or atomic number."""
    return (*element_names(e), e["symbol"], str(e["number"]))


def article(word: str) -> str:
    return ("an " if word[0].lower() in "aeiou" else "a ") + word


def element_questions(rng: random.Random, training: Training, elements: list[dict[str, Any]]) -> list[Question]:
    light = [e for e in elements if e["number"] <= 36]
    two_letter = [e for e in elements if len(e["symbol"]) == 2 and e["symbol"].lower() not in WORD_SYMBOLS]
    by_number = {e["number"]: e for e in elements}
    qs: list[Question] = []
    qs += pick(rng, two_letter, 14, training, lambda e: Question(
        f"What is the chemical symbol for {e['name'].lower()}?", [e["symbol"]], "fact", SRC_ELEMENTS,
        _ids(e), ("symbol",)))
    used = {q.entity[0] for q in qs}
    qs += pick(rng, [e for e in two_letter if element_names(e)[0] not in used], 8, training, lambda e: Question(
        f"Which element has the chemical symbol {e['symbol']}?", element_names(e), "fact", SRC_ELEMENTS,
        _ids(e), ("symbol",)))
    qs += pick(rng, [e for e in light if e["number"] <= 30], 8, training, lambda e: Question(
        f"Which element has atomic number {e['number']}?", element_names(e), "fact", SRC_ELEMENTS,
        _ids(e), ("atomic number",)))
    qs += pick(rng, [e for e in light if e["number"] > 2], 8, training, lambda e: Question(
        f"What is the atomic number of {e['name'].lower()}?", number_answers(e["number"]), "fact", SRC_ELEMENTS,
        _ids(e), ("atomic number",)))
    qs += pick(rng, [e for e in light if e["number"] < 20], 6, training, lambda e: Question(
        f"Which element comes right after {e['name'].lower()} in the periodic table?",
        element_names(by_number[e["number"] + 1]), "fact", SRC_ELEMENTS, _ids(e), ("after",)))
    # arithmetic: the atomic numbers given, and not given
    pairs = [(a, b) for a in light[:20] for b in light[:20] if a["number"] < b["number"]]
    qs += pick(rng, pairs, 8, training, lambda ab: Question(
        f"{ab[0]['name']} has atomic number {ab[0]['number']} and {ab[1]['name'].lower()} has atomic number "
        f"{ab[1]['number']}. What is the sum of their atomic numbers?",
        number_answers(ab[0]["number"] + ab[1]["number"]), "arithmetic", SRC_ELEMENTS))
    qs += pick(rng, pairs, 5, training, lambda ab: Question(
        f"What is the atomic number of {ab[0]['name'].lower()} plus the atomic number of {ab[1]['name'].lower()}?",
        number_answers(ab[0]["number"] + ab[1]["number"]), "arithmetic", SRC_ELEMENTS))
    qs += pick(rng, pairs, 4, training, lambda ab: Question(
        f"{ab[1]['name']} has atomic number {ab[1]['number']} and {ab[0]['name'].lower()} has atomic number "
        f"{ab[0]['number']}. How much larger is the atomic number of {ab[1]['name'].lower()}?",
        number_answers(ab[1]["number"] - ab[0]["number"]), "arithmetic", SRC_ELEMENTS))
    # reasoning: comparisons and protons
    far = [(a, b) for a in light for b in light if b["number"] - a["number"] >= 3]
    def compare(ab: tuple[dict[str, Any], dict[str, Any]]) -> Question:
        small, large = ab
        if rng.random() < 0.5:
            return Question(f"Which has the larger atomic number, {small['name'].lower()} or "
                            f"{large['name'].lower()}?", element_names(large), "reasoning", SRC_ELEMENTS)
        return Question(f"Which has the smaller atomic number, {large['name'].lower()} or {small['name'].lower()}?",
                        element_names(small), "reasoning", SRC_ELEMENTS)
    qs += pick(rng, far, 8, training, compare)
    def protons(e: dict[str, Any]) -> Question:
        k, name = rng.randint(2, 5), e["name"].lower()
        return Question(f"{article(name).capitalize()} atom has {e['number']} protons. How many protons do {k} {name} "
                        f"atoms have together?", number_answers(e["number"] * k), "reasoning", SRC_ELEMENTS)
    qs += pick(rng, [e for e in light if 3 <= e["number"] <= 20], 5, training, protons)
    # spelling over element names
    names = [e for e in elements if e["number"] <= 56]
    qs += pick(rng, names, 4, training, lambda e: Question(
        f"How many letters are in the word '{e['name'].lower()}'?", number_answers(len(e["name"])), "spelling",
        SRC_ELEMENTS))
    firsts = [e for e in names if e["name"][0].lower() not in NOT_LETTER_ANSWERS]
    lasts = [e for e in names if e["name"][-1].lower() not in NOT_LETTER_ANSWERS]
    qs += pick(rng, firsts, 3, training, lambda e: Question(
        f"What is the first letter of the element name '{e['name']}'?", [e["name"][0].lower()], "spelling",
        SRC_ELEMENTS))
    qs += pick(rng, lasts, 3, training, lambda e: Question(
        f"What is the last letter of the element name '{e['name']}'?", [e["name"][-1].lower()], "spelling",
        SRC_ELEMENTS))
    return qs


# --- countries -------------------------------------------------------------------------------------------------

COUNTRY_NAMES = {"Türkiye": "Turkey"}
COUNTRY_ALIASES = {"United States": ["United States", "USA", "America", "United States of America"],
                   "United Kingdom": ["United Kingdom", "UK", "Britain", "Great Britain"],
                   "DR Congo": ["DR Congo", "Democratic Republic of the Congo", "Congo"],
                   "Türkiye": ["Turkey", "Türkiye"], "Czechia": ["Czechia", "Czech Republic"],
                   "Ivory Coast": ["Ivory Coast", "Côte d'Ivoire"]}
# the capital the data gives is not the one most references name first, or the country spans two continents
AMBIGUOUS_CAPITAL = {"Bolivia", "Ivory Coast", "South Africa", "Benin", "Tanzania", "Myanmar", "Kazakhstan",
                     "Luxembourg", "Monaco", "Vatican City", "San Marino", "Andorra", "Liechtenstein"}
TRANSCONTINENTAL = {"Russia", "Türkiye", "Kazakhstan", "Egypt", "Cyprus", "Georgia", "Azerbaijan", "Armenia"}
CURRENCY_PLURALS = {"krone": ["kroner"], "krona": ["kronor"], "króna": ["krónur", "kronur"], "real": ["reais"],
                    "leu": ["lei"], "lev": ["leva"], "lira": ["liras", "lire"], "złoty": ["zlotys", "zloties"],
                    "tögrög": ["tugrik", "tughrik"], "baht": [], "yen": [], "won": [], "rand": [], "naira": [],
                    "kip": [], "dong": [], "đồng": []}


THE = {"United Kingdom", "United States", "Philippines", "Netherlands", "Central African Republic", "DR Congo"}


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:]


def country_name(c: dict[str, Any]) -> str:
    """The name as a sentence uses it ("Turkey", "the Philippines")."""
    name = COUNTRY_NAMES.get(c["name"], c["name"])
    return "the " + name if c["name"] in THE else name


def country_answers(c: dict[str, Any]) -> list[str]:
    return with_variants(COUNTRY_ALIASES.get(c["name"], [c["name"]]))


def currency_answers(names: Sequence[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        last = name.split()[-1]
        out += [name, last] + CURRENCY_PLURALS.get(last.lower(), [last + "s"])
        if name == "United States dollar":
            out += ["US dollar", "U.S. dollar"]
    return with_variants(out)


def language_answers(names: Sequence[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        base = re.sub(r"\s*\(.*\)", "", name)
        out += [base, base.split()[-1]] + re.findall(r"\((.*?)\)", name)
        if base.split()[0] in ("Norwegian",):
            out.append(base.split()[0])
    if "Bengali" in out:
        out.append("Bangla")
    return with_variants(out)


def continent_answers(c: dict[str, Any]) -> list[str] | None:
    region, sub = c["region"], c["subregion"]
    if c["name"] in TRANSCONTINENTAL:
        return None
    if region == "Americas":
        if sub == "South America":
            return ["South America"]
        return ["North America", "Central America"] if sub == "Central America" else ["North America"]
    if region == "Oceania":
        return None if c["name"] == "Australia" else ["Oceania", "Australasia", "Australia"]
    return [region]


def country_questions(rng: random.Random, training: Training, countries: list[dict[str, Any]]) -> list[Question]:
    by_code = {c["cca3"]: c for c in countries}
    qs: list[Question] = []
    simple_money = [c for c in countries if len(c["currencies"]) == 1 and c["currencies"] != ["Euro"]]
    euro = [c for c in countries if c["currencies"] == ["Euro"]]
    cur = lambda c: Question(f"What is the currency of {country_name(c)}?", currency_answers(c["currencies"]), "fact",
                             SRC_COUNTRIES, (country_name(c),), ("currency",))
    qs += pick(rng, simple_money, 14, training, cur)
    qs += pick(rng, euro, 3, training, cur)
    phrasing = ("On which continent is {}?", "Which continent is {} in?", "{} is on which continent?")
    qs += pick(rng, countries, 16, training, lambda c: None if not continent_answers(c) else Question(
        _sentence(rng.choice(phrasing).format(country_name(c))), continent_answers(c) or [], "fact", SRC_COUNTRIES,
        (country_name(c),), ("continent",)))
    lang = [c for c in countries if 1 <= len(c["languages"]) <= 2]
    phrasing = ("What is the official language of {}?", "What language is mainly spoken in {}?")
    qs += pick(rng, lang, 14, training, lambda c: Question(
        rng.choice(phrasing).format(country_name(c)), language_answers(c["languages"]), "fact", SRC_COUNTRIES,
        (country_name(c),), ("language",)))
    caps = [c for c in countries if len(c["capital"]) == 1 and c["name"] not in AMBIGUOUS_CAPITAL]
    qs += pick(rng, caps, 8, training, lambda c: Question(
        f"What is the capital of {country_name(c)}?", with_variants(c["capital"]), "fact", SRC_COUNTRIES,
        (country_name(c), c["capital"][0]), ("capital",)))
    used = {q.entity[0] for q in qs if "capital" in q.prompt}
    qs += pick(rng, [c for c in caps if country_name(c) not in used], 6, training, lambda c: Question(
        f"{c['capital'][0]} is the capital of which country?", country_answers(c), "fact", SRC_COUNTRIES,
        (country_name(c), c["capital"][0]), ("capital",)))
    near = [c for c in countries if 2 <= len(c["borders"]) <= 6 and all(b in by_code for b in c["borders"])]
    qs += pick(rng, near, 8, training, lambda c: Question(
        f"Name a country that shares a land border with {country_name(c)}.",
        with_variants(a for b in sorted(c["borders"]) for a in country_answers(by_code[b])), "fact", SRC_COUNTRIES,
        (country_name(c),), ("border",)))
    # reasoning: which is larger in area (at least twice as large)
    big = sorted((c for c in countries if c["area"] >= 100000), key=lambda c: c["name"])
    pairs = [(a, b) for a in big for b in big if b["area"] >= 2 * a["area"]]
    qs += pick(rng, pairs, 8, training, lambda ab: (lambda flip: Question(
        f"Which country is larger in area, {country_name(ab[1] if flip else ab[0])} or "
        f"{country_name(ab[0] if flip else ab[1])}?", country_answers(ab[1]), "reasoning", SRC_COUNTRIES))(
        rng.random() < 0.5))
    # spelling over one-word country names
    one_word = [c for c in countries if re.fullmatch(r"[A-Z][a-z]+", country_name(c))]
    qs += pick(rng, one_word, 4, training, lambda c: Question(
        f"How many letters are in the word '{country_name(c)}'?", number_answers(len(country_name(c))), "spelling",
        SRC_COUNTRIES))
    qs += pick(rng, [c for c in one_word if c["name"][-1] not in NOT_LETTER_ANSWERS], 3, training, lambda c: Question(
        f"What is the last letter of the country name '{country_name(c)}'?", [country_name(c)[-1]], "spelling",
        SRC_COUNTRIES))
    return qs


# --- US states -------------------------------------------------------------------------------------------------

def state_questions(rng: random.Random, training: Training, states: list[dict[str, Any]]) -> list[Question]:
    qs: list[Question] = []
    qs += pick(rng, states, 12, training, lambda s: Question(
        f"What is the capital of the US state of {s['state']}?", [s["capital"]], "fact", SRC_STATES,
        (s["state"], s["capital"]), ("capital",)))
    qs += pick(rng, [s for s in states if s["code"] not in WORD_CODES], 8, training, lambda s: Question(
        f"What is the two-letter postal abbreviation for the US state of {s['state']}?", [s["code"]], "fact",
        SRC_STATES, (s["state"],), ("abbreviation", "postal")))
    # nicknames that do not name the state or a word of it; the first of several
    def nick(s: dict[str, Any]) -> Question | None:
        n = re.sub(r"^The ", "", s["nickname"].split(" / ")[0])
        if not n.endswith(" State") or any(w in n for w in s["state"].split()):
            return None
        return Question(f"Which US state is nicknamed the {n}?", [s["state"]], "fact", SRC_STATES, (n, s["state"]),
                        ("nickname", "known as"))
    qs += pick(rng, states, 8, training, nick)
    # reasoning and arithmetic over admission dates
    pairs = [(a, b) for a in states for b in states if int(b["admitted"][:4]) - int(a["admitted"][:4]) >= 5]
    qs += pick(rng, pairs, 6, training, lambda ab: (lambda flip: Question(
        f"Which became a US state first, {(ab[1] if flip else ab[0])['state']} or "
        f"{(ab[0] if flip else ab[1])['state']}?", [ab[0]["state"]], "reasoning", SRC_STATES))(rng.random() < 0.5))
    qs += pick(rng, pairs, 5, training, lambda ab: Question(
        f"{ab[0]['state']} became a US state in {ab[0]['admitted'][:4]}. {ab[1]['state']} became a state "
        f"{int(ab[1]['admitted'][:4]) - int(ab[0]['admitted'][:4])} years later. In what year did "
        f"{ab[1]['state']} become a state?", [ab[1]["admitted"][:4]], "reasoning", SRC_STATES))
    qs += pick(rng, pairs, 6, training, lambda ab: Question(
        f"{ab[0]['state']} became a US state in {ab[0]['admitted'][:4]} and {ab[1]['state']} in "
        f"{ab[1]['admitted'][:4]}. How many years apart is that?",
        number_answers(int(ab[1]["admitted"][:4]) - int(ab[0]["admitted"][:4])), "arithmetic", SRC_STATES))
    qs += pick(rng, [s for s in states if " " not in s["state"]], 3, training, lambda s: Question(
        f"How many letters are in the word '{s['state']}'?", number_answers(len(s["state"])), "spelling",
        SRC_STATES))
    return qs


# --- planets ---------------------------------------------------------------------------------------------------

def planet_questions(rng: random.Random, training: Training, planets: list[dict[str, Any]]) -> list[Question]:
    by_order = {p["order"]: p for p in planets}
    qs: list[Question] = []
    qs += pick(rng, [p for p in planets if 2 <= p["order"] <= 7], 6, training, lambda p: Question(
        f"Which planet is the {ORDINALS[p['order'] - 1]} planet from the Sun?", [p["name"]], "fact", SRC_PLANETS,
        ORDINALS[p["order"] - 1], ("planet from the Sun",)))
    qs += pick(rng, [p for p in planets if p["order"] not in (1, 8)], 4, training, lambda p: Question(
        f"Counting outward from the Sun, what number planet is {p['name']}?", ordinal_answers(p["order"]), "fact",
        SRC_PLANETS, (p["name"], ORDINALS[p["order"] - 1]), ("from the Sun",)))
    qs += pick(rng, [p for p in planets if p["moons"] <= 1], 3, training, lambda p: Question(
        f"How many moons does {p['name']} have?",
        number_answers(p["moons"]) + (["no moons", "none", "no moon"] if p["moons"] == 0 else []), "fact",
        SRC_PLANETS, (p["name"],), ("moons",)))
    qs += pick(rng, [p for p in planets if p["order"] < 8], 6, training, lambda p: Question(
        f"Which planet comes right after {p['name']} in order from the Sun?", [by_order[p["order"] + 1]["name"]],
        "reasoning", SRC_PLANETS))
    pairs = [(a, b) for a in planets for b in planets if b["diameter"] > 1.3 * a["diameter"]]
    qs += pick(rng, pairs, 6, training, lambda ab: (lambda flip: Question(
        f"Which planet has the larger diameter, {(ab[1] if flip else ab[0])['name']} or "
        f"{(ab[0] if flip else ab[1])['name']}?", [ab[1]["name"]], "reasoning", SRC_PLANETS))(rng.random() < 0.5))
    order_pairs = [(a, b) for a in planets for b in planets if a["order"] < b["order"]]
    qs += pick(rng, order_pairs, 6, training, lambda ab: (lambda flip: Question(
        f"Which planet is closer to the Sun, {(ab[1] if flip else ab[0])['name']} or "
        f"{(ab[0] if flip else ab[1])['name']}?", [ab[0]["name"]], "reasoning", SRC_PLANETS))(rng.random() < 0.5))
    inner = [p for p in planets if p["orbital_period_days"] < 1000]
    qs += pick(rng, inner, 4, training, lambda p: (lambda k, d: Question(
        f"A year on {p['name']} lasts about {d} Earth days. About how many Earth days do {k} years on "
        f"{p['name']} last?", number_answers(d * k), "reasoning", SRC_PLANETS))(rng.randint(2, 4),
                                                                               round(p["orbital_period_days"])))
    days = [p for p in planets if 9 <= p["day_hours"] <= 30]
    qs += pick(rng, days, 4, training, lambda p: (lambda h: Question(
        f"A day on {p['name']} lasts about {h} hours. How many minutes is that?", number_answers(h * 60), "units",
        SRC_PLANETS))(round(p["day_hours"])))
    return qs


# --- words -----------------------------------------------------------------------------------------------------

def word_questions(rng: random.Random, training: Training, words: dict[str, list[str]]) -> list[Question]:
    pool = [(w, SRC_ANIMALS) for w in words["animals"]] + [(w, SRC_FRUITS) for w in words["fruits"]]
    qs: list[Question] = []
    qs += pick(rng, pool, 6, training, lambda ws: Question(
        f"How many letters are in the word '{ws[0]}'?", number_answers(len(ws[0])), "spelling", ws[1]))
    qs += pick(rng, [ws for ws in pool if ws[0][0] not in NOT_LETTER_ANSWERS], 6, training, lambda ws: Question(
        f"What is the first letter of the word '{ws[0]}'?", [ws[0][0]], "spelling", ws[1]))
    qs += pick(rng, [ws for ws in pool if ws[0][-1] not in NOT_LETTER_ANSWERS], 5, training, lambda ws: Question(
        f"What is the last letter of the word '{ws[0]}'?", [ws[0][-1]], "spelling", ws[1]))
    qs += pick(rng, [ws for ws in pool if 3 <= len(ws[0]) <= 5], 6, training, lambda ws: Question(
        f"Spell the word '{ws[0]}' backwards.", [ws[0][::-1]], "spelling", ws[1]))

    def count(ws: tuple[str, str]) -> Question | None:
        repeated = sorted(c for c in set(ws[0]) if ws[0].count(c) >= 2)
        if not repeated:
            return None
        c = repeated[0]
        return Question(f"How many times does the letter '{c}' appear in the word '{ws[0]}'?",
                        number_answers(ws[0].count(c)), "spelling", ws[1])
    qs += pick(rng, pool, 4, training, count)
    qs += pick(rng, pool, 3, training, lambda ws: Question(
        f"How many vowels are in the word '{ws[0]}'?", number_answers(sum(ch in "aeiou" for ch in ws[0])),
        "spelling", ws[1]))
    return qs


# --- generated arithmetic and units ----------------------------------------------------------------------------

CONVERSIONS = (  # (smaller unit, larger unit, how many of the smaller in one larger)
    ("days", "weeks", 7), ("minutes", "hours", 60), ("seconds", "minutes", 60), ("hours", "days", 24),
    ("months", "years", 12), ("grams", "kilograms", 1000), ("meters", "kilometers", 1000),
    ("centimeters", "meters", 100), ("millimeters", "centimeters", 10), ("inches", "feet", 12),
    ("ounces", "pounds", 16), ("milliliters", "liters", 1000), ("years", "decades", 10), ("feet", "yards", 3),
    ("cups", "pints", 2), ("quarts", "gallons", 4), ("cents", "dollars", 100), ("eggs", "dozen", 12),
)


def unit_questions(rng: random.Random, training: Training) -> list[Question]:
    qs: list[Question] = []
    for small, large, k in CONVERSIONS:
        picked = 0
        for n in rng.sample(range(2, 13), 11):
            if picked == 3:
                break
            if large == "dozen":
                q = Question(f"How many eggs are in {n} dozen?", number_answers(n * k), "units", GENERATED)
            elif picked != 1:
                q = Question(f"How many {small} are in {n} {large}?", number_answers(n * k), "units", GENERATED)
            else:
                q = Question(f"How many {large} are in {n * k} {small}?", number_answers(n), "units", GENERATED)
            if not training.overlaps(q):
                qs.append(q)
                picked += 1
    return qs


def arithmetic_questions(rng: random.Random, training: Training) -> list[Question]:
    forms: list[Callable[[], tuple[str, int]]] = [
        lambda: (lambda a, b: (f"What is the sum of {a} and {b}?", a + b))(rng.randint(11, 89), rng.randint(11, 89)),
        lambda: (lambda a, b: (f"What is {a} plus {b}?", a + b))(rng.randint(2, 40), rng.randint(2, 40)),
        lambda: (lambda a, b: (f"What is {a + b} minus {b}?", a))(rng.randint(5, 60), rng.randint(2, 40)),
        lambda: (lambda a, b: (f"What is {a} multiplied by {b}?", a * b))(rng.randint(2, 9), rng.randint(3, 12)),
        lambda: (lambda a, b: (f"What is {a * b} divided by {b}?", a))(rng.randint(2, 12), rng.randint(2, 9)),
        lambda: (lambda a: (f"What is half of {2 * a}?", a))(rng.randint(6, 60)),
        lambda: (lambda a: (f"What is double {a}?", 2 * a))(rng.randint(6, 60)),
        lambda: (lambda a: (f"What is {a} squared?", a * a))(rng.randint(3, 12)),
        lambda: (lambda p, b: (f"What is {p} percent of {b}?", p * b // 100))(rng.choice((10, 20, 25, 50)),
                                                                              rng.choice((40, 80, 120, 200, 300))),
    ]
    qs: list[Question] = []
    seen: set[str] = set()
    while len(qs) < 36:
        prompt, value = forms[len(qs) % len(forms)]()
        q = Question(prompt, number_answers(value), "arithmetic", GENERATED)
        if prompt not in seen and not training.overlaps(q):
            seen.add(prompt)
            qs.append(q)
    return qs


# --- build -----------------------------------------------------------------------------------------------------

def load_sources(folder: Path = SOURCES) -> dict[str, Any]:
    return {name: json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
            for name in ("periodic_table", "countries", "us_states", "planets", "words")}


def build(sources: dict[str, Any] | None = None, training: Training | None = None) -> list[Question]:
    """Every question, in a fixed order (category, source, prompt)."""
    sources = sources or load_sources()
    training = training or Training()
    rng = random.Random(SEED)
    qs = (element_questions(rng, training, sources["periodic_table"])
          + country_questions(rng, training, sources["countries"])
          + state_questions(rng, training, sources["us_states"])
          + planet_questions(rng, training, sources["planets"])
          + word_questions(rng, training, sources["words"])
          + unit_questions(rng, training)
          + arithmetic_questions(rng, training))
    unique = {q.prompt: q for q in qs}
    return sorted(unique.values(), key=lambda q: (q.category, q.source, q.prompt))


def render(questions: Sequence[Question]) -> str:
    return "".join(q.line() + "\n" for q in questions)


# --- extraction from the original files ------------------------------------------------------------------------

KNOWN_HEAVY = (74, 78, 79, 80, 82, 86, 88, 92, 94)


def extract(originals: Path, folder: Path = SOURCES) -> None:
    """Rewrite the small source files from the original files in ``originals``: ``PeriodicTableJSON.json``,
    ``countries.json`` (mledoze), ``states.json``, ``planets.json``, ``common.json`` and ``fruits.json``."""
    read = lambda name: json.loads((originals / name).read_text(encoding="utf-8"))
    folder.mkdir(parents=True, exist_ok=True)
    elements = [{"number": e["number"], "name": e["name"], "symbol": e["symbol"]}
                for e in read("PeriodicTableJSON.json")["elements"] if e["number"] <= 56 or e["number"] in KNOWN_HEAVY]
    countries = [{"name": c["name"]["common"], "cca3": c["cca3"], "capital": c.get("capital", []),
                  "region": c["region"], "subregion": c.get("subregion", ""),
                  "currencies": sorted(v["name"] for v in c.get("currencies", {}).values()),
                  "languages": sorted(c.get("languages", {}).values()), "borders": c.get("borders", []),
                  "area": c["area"]}
                 for c in read("countries.json") if c.get("unMember") and (c["area"] >= 100000
                                                                           or c["region"] == "Europe")]
    states = [{"state": s["state"], "code": s["code"], "nickname": s["nickname"], "capital": s["capital_city"],
               "admitted": s["admission_date"], "admission_number": s["admission_number"]}
              for s in read("states.json")]
    planets = [{"order": p["id"], "name": p["name"], "diameter": p["diameter"], "moons": p["numberOfMoons"],
                "orbital_period_days": p["orbitalPeriod"], "day_hours": p["lengthOfDay"]}
               for p in read("planets.json") if p["name"] != "Pluto"]
    one_word = lambda ws: sorted(w for w in ws if re.fullmatch(r"[a-z]+", w))
    words = {"animals": one_word(read("common.json")["animals"]), "fruits": one_word(read("fruits.json")["fruits"])}
    for name, data in (("periodic_table", elements), ("countries", countries), ("us_states", states),
                       ("planets", planets), ("words", words)):
        (folder / f"{name}.json").write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare the build with the committed file")
    parser.add_argument("--extract", type=Path, metavar="DIR",
                        help="first rewrite reference_sources/ from the original files in DIR")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    if args.extract:
        extract(args.extract)
    text = render(build())
    if args.check:
        same = args.output.exists() and args.output.read_text(encoding="utf-8") == text
        print("up to date" if same else f"{args.output} differs from the build", file=sys.stderr)
        return 0 if same else 1
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {text.count(chr(10))} items to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
