"""Tool (function) calls, once for every API shape: prompt rendering, argument grammars and reply parsing.

A reply calls tools in the Hermes / Qwen format, which is also the generic format Ember uses for models whose chat
template knows no tools::

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

- **Prompt.** When the model's chat template renders tools in this format itself (its source mentions
  ``<tool_call>``, as Qwen 2.5/3, Hermes and SmolLM3 templates do), the tool definitions go to the template as
  ``tools`` and earlier calls and results as ``tool_calls`` / ``tool`` messages, exactly as transformers passes
  them. Otherwise (the starter model's template, Llama 3.x, Mistral...) the definitions are appended to the system
  prompt (:data:`GENERIC_INSTRUCTIONS`), earlier calls are written into the assistant's text in the format above
  and tool results are sent as a user turn of ``<tool_response>`` blocks.
- **Generation.** The arguments are constrained by a GBNF grammar made from the tools' JSON schemas
  (:func:`call_grammar`), so every call parses and validates. With ``tool_choice`` ``required`` or a named function
  the grammar applies from the first token; with ``auto`` the model writes freely until it emits the opener
  ``<tool_call>``, and the engine then continues the same sequence under the grammar (see ``EngineService.chat``).
- **Parsing.** :class:`ToolStream` splits reply text into content and calls incrementally (the API streams
  argument fragments as they come); :func:`parse_reply` runs it over a whole reply, so a streamed reply and a
  non-streamed one are parsed by the same code.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping, Sequence, Union

import jsonschema
import referencing.exceptions

from inference.grammar import GrammarError, check_schema, json_grammar

OPEN = "<tool_call>"
CLOSE = "</tool_call>"

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

GENERIC_INSTRUCTIONS = (
    "You may call one or more functions to help with the user's request. The functions are described by JSON "
    "schemas inside <tools></tools>:\n<tools>\n{tools}\n</tools>\n\n"
    "To call a function, reply with a JSON object holding its name and arguments inside <tool_call></tool_call> "
    "tags:\n<tool_call>\n{{\"name\": <function-name>, \"arguments\": <arguments-json-object>}}\n</tool_call>"
)


@dataclass(frozen=True)
class ToolDef:
    """One function the model may call: its name, description and JSON schema of its arguments object."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] | None = None

    def schema(self) -> dict[str, Any]:
        """The arguments' schema (an object with no fixed properties when none was given)."""
        return dict(self.parameters) if self.parameters else {"type": "object"}

    def as_openai(self) -> dict[str, Any]:
        """The definition in OpenAI's shape (what chat templates expect in ``tools``)."""
        fn: dict[str, Any] = {"name": self.name, "parameters": self.schema()}
        if self.description:
            fn["description"] = self.description
        return {"type": "function", "function": fn}


Choice = Union[Literal["auto", "none", "required"], str]  # any other string names the function to call


@dataclass(frozen=True)
class ToolRequest:
    """The tools of one request and how the model may use them.

    ``choice``: ``auto`` (the model decides), ``none`` (no call; the definitions are left out of the prompt),
    ``required`` (at least one call) or a tool's name (exactly that function). ``parallel``: several calls in one
    reply are allowed.
    """

    tools: tuple[ToolDef, ...]
    choice: Choice = "auto"
    parallel: bool = True

    def __post_init__(self) -> None:
        names = [t.name for t in self.tools]
        for name in names:
            if not NAME_RE.match(name):
                raise ToolError(f"Invalid tool name {name!r}: use 1-64 letters, digits, '_', '-' or '.'.")
        if len(set(names)) != len(names):
            raise ToolError("Two tools have the same name.")
        if self.choice not in ("auto", "none", "required") and self.choice not in names:
            raise ToolError(f"tool_choice names the function {self.choice!r}, which is not among the tools.")
        if self.choice != "none" and not self.tools:
            raise ToolError("tool_choice asks for a tool call but no tools are given.")

    @property
    def forced(self) -> bool:
        """A call is forced from the first token (``required`` or a named function)."""
        return self.choice not in ("auto", "none")

    @property
    def callable_tools(self) -> tuple[ToolDef, ...]:
        """The tools the reply may call (one for a named choice)."""
        if self.choice in ("auto", "none", "required"):
            return self.tools
        return tuple(t for t in self.tools if t.name == self.choice)


class ToolError(GrammarError):
    """Tool definitions or a tool choice that cannot be used (a request error)."""


@dataclass(frozen=True)
class ToolCall:
    """A call in a reply: the function's name and its arguments as the model wrote them (JSON text).

    ``complete`` is False for a call cut off by the token limit (its arguments text is then partial), and for one
    whose arguments do not match the tool's schema (``error`` says why; see :func:`argument_error`)."""

    name: str
    arguments: str
    complete: bool = True
    id: str = field(default_factory=lambda: new_call_id())
    error: str | None = None  # why the arguments do not match the tool's schema (see argument_error)

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as an object (an empty one for a cut-off call)."""
        try:
            value = json.loads(self.arguments)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


def new_call_id() -> str:
    """An id for a tool call, as OpenAI forms them (``call_...``)."""
    return "call_" + uuid.uuid4().hex[:24]


@dataclass(frozen=True)
class ToolReply:
    """A reply split into its text and its tool calls."""

    content: str
    calls: tuple[ToolCall, ...] = ()


# -- prompt -------------------------------------------------------------------------------------------------------


def template_knows_tools(template_source: str) -> bool:
    """True when a chat template renders tools and calls in the ``<tool_call>`` format itself."""
    return OPEN in template_source and "tools" in template_source


def prompt_messages(messages: Sequence[Mapping[str, Any]], request: ToolRequest | None, *, native: bool
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """The messages to render and the ``tools`` to pass to the template (None: pass none).

    ``messages`` are dicts with ``role`` and ``content``; an assistant message may carry ``tool_calls`` (dicts
    with ``name``, ``arguments`` as an object, optional ``id``), a ``tool`` message ``tool_call_id`` and ``name``.
    ``native``: the template renders tools itself (:func:`template_knows_tools`).
    """
    show = request is not None and request.choice != "none" and bool(request.tools)
    if native:
        out = []
        for m in messages:
            msg: dict[str, Any] = {"role": m["role"], "content": m.get("content") or ""}
            if m.get("tool_calls"):
                msg["tool_calls"] = [{"id": c.get("id") or new_call_id(), "type": "function",
                                      "function": {"name": c["name"], "arguments": c.get("arguments") or {}}}
                                     for c in m["tool_calls"]]
            for key in ("tool_call_id", "name"):
                if m.get(key):
                    msg[key] = m[key]
            out.append(msg)
        return out, [t.as_openai() for t in request.tools] if show else None
    out = []
    for m in messages:
        role, content = m["role"], m.get("content") or ""
        if role == "tool":
            block = f"<tool_response>\n{content}\n</tool_response>"
            if out and out[-1].get("_tool_results"):
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block, "_tool_results": True})
            continue
        if role == "assistant" and m.get("tool_calls"):
            calls = "\n".join(format_call(c["name"], c.get("arguments") or {}) for c in m["tool_calls"])
            content = f"{content}\n{calls}" if content else calls
        out.append({"role": role, "content": content})
    for m in out:
        m.pop("_tool_results", None)
    if show:
        listing = "\n".join(json.dumps(t.as_openai(), ensure_ascii=False) for t in request.tools)
        instructions = GENERIC_INSTRUCTIONS.format(tools=listing)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{instructions}".lstrip()}
        else:
            out.insert(0, {"role": "system", "content": instructions})
    return out, None


def format_call(name: str, arguments: Mapping[str, Any]) -> str:
    """One call in the generic format (how an earlier call is shown to the model)."""
    body = json.dumps({"name": name, "arguments": dict(arguments)}, ensure_ascii=False)
    return f"{OPEN}\n{body}\n{CLOSE}"


# -- grammar ------------------------------------------------------------------------------------------------------

_ROOT_REF = re.compile(r"(?<![\w-])root(?![\w-])")


def call_grammar(request: ToolRequest, *, after_opener: bool = False) -> str:
    """A GBNF grammar for one call (or several when ``request.parallel``) to the request's callable tools, each
    ``<tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call>`` with arguments that match the tool's schema.

    A tool's schema that the grammar builder cannot follow (a property with no type, ``not``, a pointer into
    itself it cannot resolve...) is loosened to what it can follow (:func:`grammar_schema`): such a call's
    arguments are then checked against the schema afterwards (:func:`argument_error`).

    ``after_opener``: the text so far already ends with the opener ``<tool_call>`` (``auto``: the model opened the
    call itself), so the grammar starts just after it.

    Raises:
        ToolError: the grammar cannot be built even from the loosened schemas (not expected).
    """
    defs: dict[str, Any] = {}
    variants = []
    for i, t in enumerate(request.tools):
        if t not in request.callable_tools:
            continue
        arguments, own = grammar_schema(t.schema(), prefix=f"t{i}-")
        defs.update(own)
        variants.append({"type": "object", "properties": {"name": {"const": t.name}, "arguments": arguments},
                         "required": ["name", "arguments"], "additionalProperties": False})
    schema: dict[str, Any] = variants[0] if len(variants) == 1 else {"anyOf": variants}
    if defs:
        schema = {"$defs": defs, **schema}
    try:
        body = _grammar_of(schema)
    except GrammarError as exc:
        raise ToolError(f"A tool's parameter schema cannot be used: {exc}") from None
    rules = []
    for line in body.splitlines():
        if line.startswith("root ::= "):
            line = "tool-call-json ::= " + line[len("root ::= "):]
        rules.append(line)
    call = r'"<tool_call>\n" tool-call-json "\n</tool_call>"'
    first = r'"\n" tool-call-json "\n</tool_call>"' if after_opener else call
    more = r' ("\n" tool-call)*' if request.parallel else ""
    return "\n".join([f"root ::= tool-call-first{more}", f"tool-call-first ::= {first}",
                      f"tool-call ::= {call}", *rules]) + "\n"


def _grammar_of(schema: dict[str, Any]) -> str:
    """``json_grammar(schema)``, refusing a grammar whose rules refer back to its root (a ``$ref`` to ``#``)."""
    body = json_grammar(schema)
    for line in body.splitlines():
        if _ROOT_REF.search(line.split("::=", 1)[-1]):
            raise GrammarError("the schema refers to its root, which the grammar cannot follow")
    return body


_LOCAL_DEFS = ("#/$defs/", "#/definitions/")


def _rebased(node: Any, prefix: str) -> Any:
    """``node`` with its local ``$ref`` s pointing at ``#/$defs/<prefix><name>``: ``#`` at ``<prefix>root``,
    ``#/$defs/x`` and ``#/definitions/x`` at ``<prefix>x`` (other pointers are left as they are)."""
    if isinstance(node, list):
        return [_rebased(n, prefix) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _rebased(v, prefix) for k, v in node.items()}
    ref = node.get("$ref")
    if isinstance(ref, str):
        if ref == "#":
            out["$ref"] = f"#/$defs/{prefix}root"
        else:
            for start in _LOCAL_DEFS:
                if ref.startswith(start) and "/" not in ref[len(start):]:
                    out["$ref"] = f"#/$defs/{prefix}{ref[len(start):]}"
    return out


def grammar_schema(schema: Mapping[str, Any], *, prefix: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    """A tool's arguments schema as the grammar builder can follow it, and the definitions it refers to (to go
    in the whole grammar's ``$defs``, named with ``prefix`` so that several tools' definitions do not clash).

    The schema is kept whole when the builder follows it; otherwise each property (and definition) it cannot
    follow becomes "any JSON value", and when even that fails the arguments are "any JSON object". The looser
    grammar lets through arguments the schema refuses: :func:`argument_error` checks them afterwards.
    """
    raw = dict(schema)
    defs = {**{f"{prefix}{k}": _rebased(v, prefix) for k, v in (raw.get("definitions") or {}).items()},
            **{f"{prefix}{k}": _rebased(v, prefix) for k, v in (raw.get("$defs") or {}).items()}}
    body = _rebased({k: v for k, v in raw.items() if k not in ("$defs", "definitions", "$schema", "$id")}, prefix)
    if _refers_to(body, defs, f"#/$defs/{prefix}root"):
        defs[f"{prefix}root"] = body

    def follows(node: Any) -> bool:
        try:
            _grammar_of({"$defs": defs, **node} if defs else node)
            return True
        except GrammarError:
            return False

    if follows(body):
        return body, defs
    defs = {k: (v if isinstance(v, dict) and follows(v) else {}) for k, v in defs.items()}
    if isinstance(body.get("properties"), dict):
        props = {k: (v if isinstance(v, dict) and follows(v) else {}) for k, v in body["properties"].items()}
        loose: dict[str, Any] = {"type": "object", "properties": props}
        for key in ("required", "additionalProperties"):
            if isinstance(body.get(key), (list, bool)):
                loose[key] = body[key]
        if follows(loose):
            return loose, defs
    return {"type": "object"}, {}


def _refers_to(node: Any, defs: Mapping[str, Any], ref: str) -> bool:
    """True when ``node`` or one of ``defs`` holds ``{"$ref": ref}``."""
    return ref in json.dumps([node, dict(defs)])


def argument_error(request: ToolRequest, call: ToolCall) -> str | None:
    """Why ``call``'s arguments do not match its tool's schema (None: they match). Needed where
    :func:`grammar_schema` loosened a schema; a complete call under the full grammar always matches."""
    tool = next((t for t in request.tools if t.name == call.name), None)
    if tool is None:
        return f"There is no tool named {call.name!r}."
    try:
        value = json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        return "The arguments are not valid JSON."
    if not isinstance(value, dict):
        return "The arguments are not a JSON object."
    schema = tool.schema()
    try:
        validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)(schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    except (referencing.exceptions.Unresolvable, RecursionError):  # nothing to check against
        return None
    if error is None:
        return None
    path = ".".join(str(p) for p in error.absolute_path)
    return f"{path}: {error.message}" if path else error.message


# -- parsing ------------------------------------------------------------------------------------------------------

_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"arguments"\s*:\s*', re.S)
_MAX_HEAD = 400  # characters after the opener within which the call's name must be known


@dataclass(frozen=True)
class TextPart:
    """Reply text (not part of a call)."""

    text: str


@dataclass(frozen=True)
class CallStart:
    """A call begins: its position among the reply's calls and the function's name."""

    index: int
    name: str
    id: str


@dataclass(frozen=True)
class ArgumentsPart:
    """More of a call's arguments text."""

    index: int
    text: str


@dataclass(frozen=True)
class CallEnd:
    """A call is complete (or, at the end of a cut-off reply, as complete as it got)."""

    index: int
    call: ToolCall


StreamEvent = Union[TextPart, CallStart, ArgumentsPart, CallEnd]


def _prefix_overlap(text: str, word: str) -> int:
    """Length of the longest end of ``text`` that begins ``word``."""
    for n in range(min(len(text), len(word) - 1), 0, -1):
        if word.startswith(text[-n:]):
            return n
    return 0


class ToolStream:
    """Splits reply text, fed piece by piece, into :data:`StreamEvent` s.

    Text that may be the start of the opener is held until it is clear; whitespace between calls is dropped. A
    call whose name cannot be read (a model writing the format freely, not under the grammar) is read whole at its
    closing tag; one that is not valid JSON even then is given back as text.
    """

    def __init__(self) -> None:
        self._buf = ""
        self._state = "text"  # text | head | args | tail | raw
        self._calls = 0
        self._name = ""
        self._id = ""
        self._args: list[str] = []
        self._depth = 0
        self._in_str = False
        self._esc = False
        self._after_call = False

    def push(self, text: str) -> list[StreamEvent]:
        """Events for ``text`` appended to the reply."""
        self._buf += text
        out: list[StreamEvent] = []
        while True:
            before = (self._state, len(self._buf))
            getattr(self, "_step_" + self._state)(out)
            if (self._state, len(self._buf)) == before:
                return out

    def finish(self) -> list[StreamEvent]:
        """Events for what is left when the reply ends."""
        out: list[StreamEvent] = []
        if self._state == "text":
            if self._buf and not (self._after_call and not self._buf.strip()):
                out.append(TextPart(self._buf))
        elif self._state in ("head", "raw"):
            out.append(TextPart(OPEN + self._buf))  # no call came of it: give the text back
        else:  # args or tail: a call cut off (args) or missing only its closing tag (tail)
            if self._state == "args":
                self._args.append(self._buf)
                if self._buf:
                    out.append(ArgumentsPart(self._calls, self._buf))
            out.append(CallEnd(self._calls, ToolCall(self._name, "".join(self._args),
                                                     complete=self._state == "tail", id=self._id)))
            self._calls += 1
        self._buf = ""
        self._state = "text"
        return out

    # -- states -----------------------------------------------------------------------------------------------

    def _step_text(self, out: list[StreamEvent]) -> None:
        if self._after_call:
            stripped = self._buf.lstrip()
            if not stripped:
                return
            self._buf = stripped
            self._after_call = False
        at = self._buf.find(OPEN)
        if at >= 0:
            if at:
                out.append(TextPart(self._buf[:at]))
            self._buf = self._buf[at + len(OPEN):]
            self._state = "head"
            return
        keep = _prefix_overlap(self._buf, OPEN)
        ready = self._buf[:len(self._buf) - keep]
        if ready:
            out.append(TextPart(ready))
            self._buf = self._buf[len(ready):]

    def _step_head(self, out: list[StreamEvent]) -> None:
        m = _HEAD.match(self._buf)
        if m is None:
            if len(self._buf) > _MAX_HEAD or CLOSE in self._buf:
                self._state = "raw"
            return
        try:
            name = json.loads(m.group(1))
        except ValueError:
            self._state = "raw"
            return
        self._name, self._id = name, new_call_id()
        self._args, self._depth, self._in_str, self._esc = [], 0, False, False
        self._buf = self._buf[m.end():]
        self._state = "args"
        out.append(CallStart(self._calls, name, self._id))

    def _step_args(self, out: list[StreamEvent]) -> None:
        end = None
        for i, ch in enumerate(self._buf):
            if self._in_str:
                if self._esc:
                    self._esc = False
                elif ch == "\\":
                    self._esc = True
                elif ch == '"':
                    self._in_str = False
            elif ch == '"':
                self._in_str = True
            elif ch in "{[":
                self._depth += 1
            elif ch in "}]":
                self._depth -= 1
                if self._depth <= 0:
                    end = i + 1
                    break
        piece = self._buf if end is None else self._buf[:end]
        if not self._args:
            piece = piece.lstrip()  # whitespace before the value is not part of the arguments
        if piece:
            self._args.append(piece)
            out.append(ArgumentsPart(self._calls, piece))
        self._buf = "" if end is None else self._buf[end:]
        if end is not None:
            self._state = "tail"

    def _step_tail(self, out: list[StreamEvent]) -> None:
        at = self._buf.find(CLOSE)
        if at < 0:
            return
        out.append(CallEnd(self._calls, ToolCall(self._name, "".join(self._args), id=self._id)))
        self._calls += 1
        self._buf = self._buf[at + len(CLOSE):]
        self._state = "text"
        self._after_call = True

    def _step_raw(self, out: list[StreamEvent]) -> None:
        at = self._buf.find(CLOSE)
        if at < 0:
            return
        body, self._buf = self._buf[:at], self._buf[at + len(CLOSE):]
        call = _loose_call(body)
        if call is None:
            out.append(TextPart(OPEN + body + CLOSE))
        else:
            out.append(CallStart(self._calls, call.name, call.id))
            out.append(ArgumentsPart(self._calls, call.arguments))
            out.append(CallEnd(self._calls, call))
            self._calls += 1
            self._after_call = True
        self._state = "text"


def _loose_call(body: str) -> ToolCall | None:
    """A call written freely (keys in another order, ``parameters`` for ``arguments``), or None."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    args = value.get("arguments", value.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    return ToolCall(value["name"], json.dumps(args, ensure_ascii=False))


def parse_reply(text: str) -> ToolReply:
    """A whole reply split into content and calls (the same parser the streams use)."""
    stream = ToolStream()
    events = stream.push(text) + stream.finish()
    return reply_from_events(events)


def reply_from_events(events: Iterable[StreamEvent]) -> ToolReply:
    """The reply that a sequence of stream events makes up."""
    content = []
    calls = []
    for event in events:
        if isinstance(event, TextPart):
            content.append(event.text)
        elif isinstance(event, CallEnd):
            calls.append(event.call)
    return ToolReply("".join(content), tuple(calls))


def tool_request(tools: Sequence[Mapping[str, Any]], choice: Choice = "auto", parallel: bool = True, *,
                 schema_at: str = "tools[{index}].parameters") -> ToolRequest:
    """A :class:`ToolRequest` from definitions given as dicts with ``name``, ``description``, ``parameters``;
    ``schema_at`` names a tool's parameter schema in the request (``{index}``: its place in ``tools``).

    Raises:
        SchemaError: a parameter schema is not valid JSON Schema (:func:`inference.grammar.check_schema`).
        ToolError: a name is invalid or repeated, a schema is not an object's, or ``choice`` names no given tool.
    """
    defs = tuple(ToolDef(str(t["name"]), str(t.get("description") or ""), t.get("parameters")) for t in tools)
    for index, d in enumerate(defs):
        if d.parameters is not None:
            check_schema(d.parameters, where=schema_at.format(index=index))
    for d in defs:
        if d.parameters is not None and (not isinstance(d.parameters, Mapping)
                                         or d.parameters.get("type", "object") != "object"):
            raise ToolError(f"The parameters of tool {d.name!r} must be a JSON schema of type 'object'.")
    return ToolRequest(defs, choice, parallel)
