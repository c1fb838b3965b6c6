"""JSON grammars for response formats: built from schemas, refused clearly when unusable."""

from __future__ import annotations

import pytest

from inference.grammar import GrammarError, json_grammar


def test_json_mode_grammar_has_an_object_root() -> None:
    grammar = json_grammar()
    assert "root" in grammar and "object" in grammar


def test_schema_grammar_names_the_properties() -> None:
    grammar = json_grammar({"type": "object", "properties": {"answer": {"type": "boolean"}},
                            "required": ["answer"]})
    assert "answer" in grammar and "root" in grammar


def test_unusable_schema_is_a_grammar_error() -> None:
    with pytest.raises(GrammarError):
        json_grammar({"$ref": "#/definitions/missing"})


def test_integer_bounds_are_enforced_by_the_grammar():
    from inference.grammar import _bounded_integers_as_enums, json_grammar

    schema = {"type": "object", "properties": {"legs": {"type": "integer", "minimum": 0, "maximum": 8},
                                               "big": {"type": "integer", "minimum": 0, "maximum": 10**9},
                                               "odd": {"type": "integer", "exclusiveMinimum": 1,
                                                       "exclusiveMaximum": 4}}}
    rewritten = _bounded_integers_as_enums(schema)["properties"]
    assert rewritten["legs"] == {"enum": list(range(9))}
    assert rewritten["odd"] == {"enum": [2, 3]}
    assert rewritten["big"]["type"] == "integer"  # too wide to list: left as it was
    assert '"8"' in json_grammar(schema) and '"12"' not in json_grammar(schema)
