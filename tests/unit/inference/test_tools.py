"""Tool calls: prompt rendering, the call grammar and the incremental parser."""

from __future__ import annotations

import json

import pytest

from inference.chat_template import ChatTemplate
from inference.tools import (CLOSE, OPEN, ArgumentsPart, CallEnd, CallStart, TextPart, ToolError, ToolStream,
                             call_grammar, parse_reply, prompt_messages, template_knows_tools, tool_request)

WEATHER = {"name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                           "days": {"type": "integer", "minimum": 1,
                                                                    "maximum": 7}},
                          "required": ["city"]}}
TIME = {"name": "get_time", "parameters": {"type": "object", "properties": {}}}

# The tools part of Qwen2.5's chat template (it renders tools itself, in the <tool_call> format).
QWEN_LIKE = (
    "{%- if tools %}<|im_start|>system\n# Tools\n<tools>{%- for tool in tools %}\n{{ tool | tojson }}{%- endfor %}"
    "\n</tools>\nFor each call return <tool_call></tool_call><|im_end|>\n{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'assistant' and message.tool_calls %}<|im_start|>assistant\n{{ message.content }}"
    "{%- for tool_call in message.tool_calls %}{%- set tool_call = tool_call.function %}\n<tool_call>\n"
    '{"name": "{{ tool_call.name }}", "arguments": {{ tool_call.arguments | tojson }}}\n</tool_call>'
    "{%- endfor %}<|im_end|>\n"
    "{%- elif message.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ message.content }}\n"
    "</tool_response><|im_end|>\n"
    "{%- else %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}"
)

HISTORY = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "name": "get_weather",
                                                         "arguments": {"city": "Paris"}}]},
    {"role": "tool", "content": "sunny", "tool_call_id": "call_1", "name": "get_weather"},
    {"role": "tool", "content": "22 C", "tool_call_id": "call_2", "name": "get_weather"},
]


def events(pieces: list[str]) -> list:
    stream = ToolStream()
    out = []
    for p in pieces:
        out += stream.push(p)
    return out + stream.finish()


def test_parse_reply_splits_content_and_calls() -> None:
    text = (f'Let me check.{OPEN}\n{{"name": "get_weather", "arguments": {{"city": "Pa}}ris"}}}}\n{CLOSE}\n'
            f'{OPEN}\n{{"name": "get_time", "arguments": {{}}}}\n{CLOSE}')
    reply = parse_reply(text)
    assert reply.content == "Let me check."
    assert [c.name for c in reply.calls] == ["get_weather", "get_time"]
    assert json.loads(reply.calls[0].arguments) == {"city": "Pa}ris"}
    assert reply.calls[1].parsed_arguments() == {}
    assert all(c.complete for c in reply.calls) and reply.calls[0].id != reply.calls[1].id


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_streamed_pieces_give_the_same_reply(size: int) -> None:
    text = f'Hi <tool_ {OPEN}\n{{"name": "a.b", "arguments": {{"x": [1, {{"y": "\\"}}"}}]}}}}\n{CLOSE}\n\n'
    whole = parse_reply(text)
    got = events([text[i:i + size] for i in range(0, len(text), size)])
    starts = [e for e in got if isinstance(e, CallStart)]
    args = "".join(e.text for e in got if isinstance(e, ArgumentsPart))
    ends = [e for e in got if isinstance(e, CallEnd)]
    assert "".join(e.text for e in got if isinstance(e, TextPart)) == whole.content == "Hi <tool_ "
    assert [s.name for s in starts] == ["a.b"] and len(ends) == 1
    assert args == ends[0].call.arguments == whole.calls[0].arguments
    assert json.loads(args) == {"x": [1, {"y": '"}'}]}
    assert got.index(starts[0]) < got.index(ends[0])


def test_cut_off_call_is_incomplete_and_unopened_opener_is_text() -> None:
    reply = parse_reply(f'{OPEN}\n{{"name": "f", "arguments": {{"a": "bc')
    assert not reply.calls[0].complete and reply.calls[0].arguments == '{"a": "bc'
    assert parse_reply("text <tool_ca").content == "text <tool_ca"
    assert parse_reply(f"{OPEN} not json {CLOSE}").content == f"{OPEN} not json {CLOSE}"


def test_free_form_call_with_other_key_order_is_read_at_its_close() -> None:
    reply = parse_reply(f'{OPEN}{{"arguments": {{"q": 1}}, "name": "s"}}{CLOSE}')
    assert reply.calls[0].name == "s" and json.loads(reply.calls[0].arguments) == {"q": 1}


def test_generic_prompt_lists_tools_and_writes_history_into_text() -> None:
    request = tool_request([WEATHER, TIME])
    msgs, tools = prompt_messages([{"role": "system", "content": "Be brief."}, *HISTORY], request, native=False)
    assert tools is None
    assert msgs[0]["role"] == "system" and msgs[0]["content"].startswith("Be brief.")
    assert '"name": "get_weather"' in msgs[0]["content"] and "<tools>" in msgs[0]["content"]
    assert msgs[2] == {"role": "assistant",
                       "content": f'{OPEN}\n{{"name": "get_weather", "arguments": {{"city": "Paris"}}}}\n{CLOSE}'}
    assert msgs[3]["role"] == "user" and msgs[3]["content"].count("<tool_response>") == 2
    assert len(msgs) == 4
    none, _ = prompt_messages(HISTORY, tool_request([WEATHER], "none"), native=False)
    assert none[0]["role"] == "user"  # no tool listing for tool_choice none


def test_native_template_renders_tools_calls_and_results() -> None:
    assert template_knows_tools(QWEN_LIKE)
    template = ChatTemplate(QWEN_LIKE, bos_token="", eos_token="<|im_end|>", strip_bos=False)
    assert not template_knows_tools(template.source.replace(OPEN, ""))
    msgs, tools = prompt_messages(HISTORY, tool_request([WEATHER]), native=True)
    prompt = template.render(msgs, tools=tools)
    assert '"name": "get_weather"' in prompt.split("</tools>")[0]
    assert f'{OPEN}\n{{"name": "get_weather", "arguments": {{"city": "Paris"}}}}\n{CLOSE}' in prompt
    assert "<tool_response>\nsunny\n</tool_response>" in prompt
    assert prompt.rstrip().endswith("<|im_start|>assistant")


def test_grammar_builds_for_each_choice_and_refuses_bad_requests() -> None:
    for choice, parallel in (("required", True), ("get_time", False), ("auto", True)):
        g = call_grammar(tool_request([WEATHER, TIME], choice, parallel))
        assert g.startswith("root ::= tool-call-first") and "tool-call-json ::=" in g
        assert ('("\\n" tool-call)*' in g) == parallel
    assert call_grammar(tool_request([WEATHER]), after_opener=True).splitlines()[1].startswith(
        'tool-call-first ::= "\\n" tool-call-json')
    with pytest.raises(ToolError):
        tool_request([WEATHER], "nope")
    with pytest.raises(ToolError):
        tool_request([WEATHER, WEATHER])
    with pytest.raises(ToolError):
        tool_request([{"name": "bad name"}])
    with pytest.raises(ToolError):
        tool_request([{"name": "f", "parameters": {"type": "string"}}])


def test_grammar_parses_in_llama_cpp() -> None:
    from llama_cpp.llama_grammar import LlamaGrammar

    for after in (False, True):
        LlamaGrammar.from_string(call_grammar(tool_request([WEATHER, TIME], "required"), after_opener=after),
                                 verbose=False)


def test_a_parameter_schema_that_is_not_json_schema_is_refused_naming_its_place() -> None:
    from inference.grammar import SchemaError

    bad = {"name": "f", "parameters": {"type": "object", "properties": [1, 2]}}
    with pytest.raises(SchemaError, match=r"^tools\[1\]\.parameters: properties: \[1, 2\] is not of type 'object'"):
        tool_request([WEATHER, bad])
    with pytest.raises(SchemaError, match=r"^tools\[0\]\.input_schema: minItems: "):
        tool_request([{"name": "f", "parameters": {"minItems": "x"}}], schema_at="tools[{index}].input_schema")


# Valid JSON Schemas that the grammar builder cannot follow whole (Claude Code's Workflow tool has a property with
# no type), and recursive ones it follows once their references are rebased into the call grammar's $defs.
NO_TYPE = {"name": "Workflow", "parameters": {
    "$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
    "properties": {"script": {"type": "string"}, "inputs": {"description": "anything"}},
    "required": ["script"], "additionalProperties": False}}
NOT = {"name": "n", "parameters": {"type": "object", "properties": {"a": {"not": {"type": "string"}},
                                                                    "b": {"type": "integer"}}, "required": ["b"]}}
ROOT_REF = {"name": "tree", "parameters": {"type": "object", "properties": {
    "label": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#"}}}, "required": ["label"]}}
DEFS = {"name": "d", "parameters": {"type": "object", "$defs": {"x": {"type": "string", "enum": ["a", "b"]}},
                                    "definitions": {"y": {"type": "integer"}},
                                    "properties": {"a": {"$ref": "#/$defs/x"}, "b": {"$ref": "#/definitions/y"}},
                                    "required": ["a"]}}
DEEP_REF = {"name": "deep", "parameters": {"type": "object", "$defs": {"r": {"type": "object", "properties": {
    "c": {"type": "string"}}}}, "properties": {"a": {"$ref": "#/$defs/r/properties/c"}}}}


def test_grammar_follows_what_it_can_and_loosens_the_rest() -> None:
    from llama_cpp.llama_grammar import LlamaGrammar

    from inference.tools import grammar_schema

    tools = [NO_TYPE, NOT, ROOT_REF, DEFS, DEEP_REF, WEATHER]
    for some in ([t] for t in tools):
        LlamaGrammar.from_string(call_grammar(tool_request(some, "required")), verbose=False)
    LlamaGrammar.from_string(call_grammar(tool_request(tools, "required"), after_opener=True), verbose=False)
    # the expressible subset: the property the builder cannot follow is any JSON value, the rest stays
    assert grammar_schema(NO_TYPE["parameters"]) == ({"type": "object", "properties": {
        "script": {"type": "string"}, "inputs": {}}, "required": ["script"], "additionalProperties": False}, {})
    assert grammar_schema(NOT["parameters"])[0]["properties"] == {"a": {}, "b": {"type": "integer"}}
    # followed whole: local references point at the prefixed definitions
    body, defs = grammar_schema(DEFS["parameters"], prefix="t3-")
    assert body["properties"] == {"a": {"$ref": "#/$defs/t3-x"}, "b": {"$ref": "#/$defs/t3-y"}}
    assert set(defs) == {"t3-x", "t3-y"}
    body, defs = grammar_schema(ROOT_REF["parameters"], prefix="t0-")
    assert body["properties"]["children"]["items"] == {"$ref": "#/$defs/t0-root"} and "t0-root" in defs
    assert grammar_schema(WEATHER["parameters"]) == (WEATHER["parameters"], {})


def test_argument_error_checks_calls_against_the_whole_schema() -> None:
    from inference.tools import ToolCall, argument_error

    request = tool_request([NO_TYPE, NOT, ROOT_REF])
    assert argument_error(request, ToolCall("Workflow", '{"script": "x", "inputs": [1, {"a": 2}]}')) is None
    assert argument_error(request, ToolCall("Workflow", '{"inputs": 3}')) == "'script' is a required property"
    assert argument_error(request, ToolCall("n", '{"a": "s", "b": 1}')).startswith("a: 's' should not be valid")
    assert argument_error(request, ToolCall("tree", '{"label": "a", "children": [{"label": "b"}]}')) is None
    assert argument_error(request, ToolCall("tree", '{"label": "a", "children": [{}]}')).startswith("children.0")
    assert argument_error(request, ToolCall("zz", "{}")) == "There is no tool named 'zz'."
    assert argument_error(request, ToolCall("n", "[1]")) == "The arguments are not a JSON object."
    assert argument_error(request, ToolCall("n", '{"b": ')) == "The arguments are not valid JSON."
