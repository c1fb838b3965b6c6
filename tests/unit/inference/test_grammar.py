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


@pytest.mark.parametrize("schema, message", [
    ({"type": "object", "properties": [1, 2]}, "format: properties: [1, 2] is not of type 'object'"),
    ({"properties": "abc"}, "format: properties: 'abc' is not of type 'object'"),
    ({"type": "array", "items": 5}, "format: items: 5 is not of type 'object', 'boolean'"),
    ({"minItems": "x"}, "format: minItems: 'x' is not of type 'integer'"),
    ({"properties": {"a": {"type": "strin"}}}, "format: properties.a.type: "),
    ({"type": "string", "pattern": "("}, "format: pattern: '(' is not a 'regex'"),
])
def test_invalid_json_schema_is_a_schema_error_naming_the_bad_part(schema: dict, message: str) -> None:
    from inference.grammar import SchemaError, check_schema

    with pytest.raises(SchemaError) as raised:
        json_grammar(schema, where="format")
    assert str(raised.value).startswith(message)
    with pytest.raises(SchemaError):
        check_schema(schema)


def test_valid_schemas_pass_the_metaschema_check_even_when_unsupported() -> None:
    from inference.grammar import check_schema

    for schema in ({"type": "object"}, {"$ref": "#/$defs/a", "$defs": {"a": {"type": "string"}}},
                   {"anyOf": [{"type": "string"}, {"type": "integer"}]}, {"additionalProperties": False}, {}):
        check_schema(schema)  # refused later (if at all) by the grammar builder, never by the metaschema


def test_a_huge_offending_value_is_cut_in_the_message() -> None:
    from inference.grammar import SchemaError, check_schema

    with pytest.raises(SchemaError) as raised:
        check_schema({"enum": "x" * 5000})
    assert len(str(raised.value)) < 500
