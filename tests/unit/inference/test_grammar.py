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
