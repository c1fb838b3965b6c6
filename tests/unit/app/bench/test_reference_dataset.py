"""The reference routing dataset (``app/resources/routing_reference.jsonl``): loadable, disjoint from the training
questions, every item sourced, and exactly what ``python -m app.bench.reference_dataset`` builds."""

from __future__ import annotations

import json
from collections import Counter

from app.bench import reference_dataset as ref
from app.bench.routing import is_correct, load_dataset

CATEGORIES = {"fact", "arithmetic", "spelling", "reasoning", "units"}


def _lines() -> list[dict]:
    return [json.loads(line) for line in ref.OUTPUT.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_the_file_loads_as_a_routing_dataset_of_at_least_300_items():
    items = load_dataset(ref.OUTPUT)
    assert len(items) >= 300
    assert {it.split for it in items} == {"all"}
    assert {it.category for it in items} == CATEGORIES


def test_every_item_names_its_source_and_the_mix_is_not_one_kind():
    lines = _lines()
    assert all(x["split"] == "all" and x["source"] for x in lines)
    sources = Counter(x["source"] for x in lines)
    assert len(sources) >= 5 and sources[ref.GENERATED] < len(lines) / 2
    categories = Counter(x["category"] for x in lines)
    assert categories["fact"] < len(lines) / 2
    assert sum("capital" in x["prompt"] for x in lines) < len(lines) / 8


def test_no_prompt_is_a_training_question():
    training = {p.strip().lower() for p in ref.Training().prompts}
    assert not [x["prompt"] for x in _lines() if x["prompt"].strip().lower() in training]


def test_the_overlap_rule_drops_the_same_fact_about_the_same_entity():
    training = ref.Training()
    assert training.overlaps(ref.Question("What currency does Japan use?", ["yen"], "fact", "x", ("Japan",),
                                          ("currency",)))
    assert not training.overlaps(ref.Question("What is the currency of Norway?", ["krone"], "fact", "x",
                                              ("Norway",), ("currency",)))


def test_answers_are_checkable_and_never_a_letter_every_reply_holds():
    for x in _lines():
        assert x["answers"] and all(is_correct(a, x["answers"]) for a in x["answers"])
        assert not any(len(a) == 1 and a.lower() in ref.NOT_LETTER_ANSWERS for a in x["answers"]), x


def test_number_answers_list_digits_and_words():
    assert ref.number_answers(7) == ["7", "seven"]
    assert ref.number_answers(42) == ["42", "forty-two", "forty two"]
    assert ref.number_answers(2748) == ["2748", "2,748"]


def test_the_builder_output_equals_the_committed_file():
    assert ref.render(ref.build()) == ref.OUTPUT.read_text(encoding="utf-8")
