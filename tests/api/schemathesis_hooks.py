"""Schemathesis hooks for fuzzing Ember's API with the real model in bounded time (``SCHEMATHESIS_HOOKS``).

Before each call the body's token limits are cut to a few tokens and, for most cases, the model is the library's
``default`` so generation is reached. Only values the schema allows are changed, and only into other allowed
values: a case generated as valid stays valid and one generated as invalid stays invalid.

What JSON Schema cannot say about a request (its descriptions say it) is made true the same way: a tool schema
or output format that the served document allows but that is not valid JSON Schema, or that the output grammar
cannot follow, becomes ``{"type": "object"}``; tools with the same name get distinct names; a tool choice names
one of the tools; a call's arguments are JSON objects (the ``json-object`` format).

The full run against ``ember serve`` (token in ``EMBER_SECRET_API_TOKEN``, ``EMBER_HOME`` a temporary folder)::

    SCHEMATHESIS_HOOKS=tests.api.schemathesis_hooks st run http://127.0.0.1:8765/openapi.json \
        -H "Authorization: Bearer $TOKEN" --checks all --max-response-time 120 --max-examples 10 --seed 1 \
        --phases examples,fuzzing,stateful --continue-on-failure --no-shrink --workers 1

(``--max-response-time``: the default 10 s limit of ``--checks all`` measures a busy 2-core machine, not the API.)
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from hypothesis import strategies as st

from inference.grammar import GrammarError, json_grammar
from inference.tools import NAME_RE

schemathesis.openapi.format("json-object", st.one_of(st.just(""), st.dictionaries(
    st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=8), st.booleans()), max_size=3).map(json.dumps)))

# Token limits a generated case may ask for, as they are kept (any larger allowed value is cut to this).
MAX_FUZZ_TOKENS = 4
MAX_FUZZ_INPUTS = 8  # embedding inputs (of the 2048 a request may have)
_LIMIT_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
_MAX_TOKENS_LIMIT = 131072


def _cut(value: Any, low: int) -> Any:
    """``value`` lowered to MAX_FUZZ_TOKENS when it is an allowed token limit (``low`` .. the limit)."""
    integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if integral and not isinstance(value, bool) and low <= value <= _MAX_TOKENS_LIMIT:
        return min(int(value), MAX_FUZZ_TOKENS) if value >= 1 else MAX_FUZZ_TOKENS
    return value


def bound_body(body: Any) -> Any:
    """``body`` with its token limits and embedding inputs cut, (for two cases in three) the model set to
    ``default``, and its tools and output formats made usable (see the module's docstring)."""
    if not isinstance(body, dict):
        return body
    for name in _LIMIT_FIELDS:
        if name in body:
            body[name] = _cut(body[name], 1)
    options = body.get("options")
    if isinstance(options, dict) and "num_predict" in options:
        options["num_predict"] = _cut(options["num_predict"], -2)  # -1/-2: until the context is full
    inputs = body.get("input")
    if isinstance(inputs, list) and 1 <= len(inputs) <= 2048 and all(isinstance(x, str) for x in inputs):
        body["input"] = inputs[:MAX_FUZZ_INPUTS]  # embedding 2048 texts takes minutes on 2 cores
    model = body.get("model")
    if isinstance(model, str) and 1 <= len(model) <= 1024 and len(model) % 3:
        body["model"] = "default"
    _usable_tools(body)
    if isinstance(body.get("format"), dict):
        body["format"] = _usable_schema(body["format"])
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and isinstance(fmt.get("json_schema"), dict) \
            and isinstance(fmt["json_schema"].get("schema"), dict):
        fmt["json_schema"]["schema"] = _usable_schema(fmt["json_schema"]["schema"])
    return body


def _usable_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema``, or ``{"type": "object"}`` when Ember cannot use it (an object's schema stays one)."""
    if schema.get("type", "object") != "object":
        return schema  # the document refuses it too: left for the check to see refused
    try:
        json_grammar(schema)
    except GrammarError:
        return {"type": "object"}
    return schema


def _usable_tools(body: dict[str, Any]) -> None:
    """Tools with distinct names and usable schemas, and a tool choice that names one of them."""
    tools = body.get("tools")
    if not isinstance(tools, list):
        return
    names: list[str] = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) and "function" in tool else tool
        if not isinstance(fn, dict):
            continue
        name = fn.get("name")
        if isinstance(name, str) and NAME_RE.match(name):
            if name in names:
                fn["name"] = name = f"t{i}_{name}"[:64]
            names.append(name)
        for key in ("parameters", "input_schema"):
            if isinstance(fn.get(key), dict):
                fn[key] = _usable_schema(fn[key])
    choice = body.get("tool_choice")
    if names and isinstance(choice, dict):
        target = choice.get("function") if isinstance(choice.get("function"), dict) else choice
        if isinstance(target.get("name"), str) and 1 <= len(target["name"]) <= 64 and target["name"] not in names:
            target["name"] = names[0]


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Bound every generated body before it is sent."""
    case.body = bound_body(case.body)
