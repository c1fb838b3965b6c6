"""Request bodies of the OpenAI- and Ollama-compatible routes (pydantic; also the served OpenAPI schema).

Fields that clients commonly send but Ember does not use (``user``, ``presence_penalty``, Ollama's ``num_ctx``...)
are accepted and ignored; fields that would change the answer in a way Ember cannot honour (``n`` > 1, images,
fill in the middle) are refused with a 400. What the routes refuse beyond pydantic's types is said in the served
schema too (``documented``), so the OpenAPI document describes the requests Ember accepts; what JSON Schema cannot
say (a schema that must itself be valid JSON Schema, a tool choice that must name one of the tools) is said in
the field's description.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from inference.router import Policy, Tier
from inference.sampling import MAX_TOKENS_LIMIT, optional_field
from inference.tools import NAME_RE


_INTEGER_TYPES = (int, Optional[int])


class _Lenient(BaseModel):
    """Unknown fields are ignored; known ones take their JSON type only (strict: ``false`` is not a number,
    ``"5"`` not an integer), as the served schema says; an integer may be written ``5.0``, as JSON Schema allows."""

    model_config = ConfigDict(extra="ignore", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _integral_floats(cls, data: Any) -> Any:
        """The body with floats that have no fraction turned into integers where the field is an integer."""
        if not isinstance(data, dict):
            return data
        fixed = {name: int(data[name]) for name, field in cls.model_fields.items()
                 if field.annotation in _INTEGER_TYPES and isinstance(data.get(name), float)
                 and data[name].is_integer()}
        return {**data, **fixed} if fixed else data


def documented(default: Any = None, *, description: str | None = None, **schema: Any) -> Any:
    """A field whose served JSON schema is ``schema`` (what the route accepts, checked there with a message that
    names the problem) in place of the one pydantic derives from its type."""
    return Field(default, description=description, json_schema_extra=schema)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


TEXT = {"type": "string", "minLength": 1}
EMPTY = {"anyOf": [{"type": "string", "maxLength": 0}, {"type": "null"}]}  # refused unless empty
TOOL_NAME = {"type": "string", "pattern": NAME_RE.pattern}
# A JSON object's text (earlier tool calls' arguments): JSON Schema cannot say more than the custom format.
JSON_OBJECT_TEXT = {"type": "string", "format": "json-object",
                    "description": "A JSON object as text (as OpenAI sends a call's arguments); '' is {}."}
JSON_SCHEMA = {"type": "object", "description": "A JSON Schema (Draft 2020-12). One that is not valid JSON Schema, "
                                               "or that the output grammar cannot follow, is refused with 400."}
TOOL_SCHEMA = {"type": "object", "description": "A JSON Schema (Draft 2020-12) of the arguments object. One that is "
                                               "not valid JSON Schema is refused with 400; parts that the output "
                                               "grammar cannot follow are loosened, and the arguments are checked "
                                               "against the schema afterwards."}
EMBED_INPUT = {"anyOf": [TEXT, {"type": "array", "items": TEXT, "minItems": 1, "maxItems": 2048}],
               "description": "Text to embed: a string or a list of strings (token ids are not supported)."}


class ContentPart(_Lenient):
    """One part of a multi-part message (a tool result's parts: only ``text`` parts are read)."""

    type: str
    text: str | None = None


class TextPart(ContentPart):
    """One part of a chat message's content: only ``text`` parts are supported."""

    model_config = ConfigDict(json_schema_extra={"properties": {"type": {"const": "text"}, "text": {"type": "string"}},
                                                 "required": ["type", "text"]})


class FunctionCallIn(_Lenient):
    name: str = Field(..., min_length=1, max_length=64)
    arguments: str = documented("", **JSON_OBJECT_TEXT)  # JSON text, as OpenAI sends it


class ToolCallIn(_Lenient):
    """A call in an earlier assistant message."""

    id: str = Field("", max_length=256)
    type: Literal["function"] = "function"
    function: FunctionCallIn


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Union[str, list[TextPart], None] = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None  # assistant
    tool_call_id: str | None = Field(None, max_length=256)  # tool


class FunctionDef(_Lenient):
    name: str = Field(..., min_length=1, max_length=64, json_schema_extra={"pattern": NAME_RE.pattern})
    description: str | None = None
    parameters: dict[str, Any] | None = documented(**_nullable({**TOOL_SCHEMA, "properties": {"type": {
        "const": "object"}}}))
    strict: bool | None = None


class ChatTool(_Lenient):
    """One tool of ``tools`` (only functions)."""

    type: Literal["function"] = "function"
    function: FunctionDef


class NamedFunction(_Lenient):
    name: str = Field(..., min_length=1, max_length=64)


class NamedToolChoice(_Lenient):
    type: Literal["function"] = "function"
    function: NamedFunction


class JsonSchemaFormat(_Lenient):
    name: str | None = Field(None, max_length=256)
    schema_: dict[str, Any] | None = Field(None, alias="schema", json_schema_extra=_nullable(JSON_SCHEMA))
    strict: bool | None = None


class ResponseFormat(_Lenient):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(_Lenient):
    include_usage: bool = False


class _Sampling(_Lenient):
    """Sampling fields shared by chat and text completions (OpenAI names, plus llama.cpp's extras)."""

    model: str = Field(..., min_length=1, max_length=1024)
    temperature: float | None = optional_field("temperature", le=2.0)  # OpenAI's bound
    top_p: float | None = optional_field("top_p")
    top_k: int | None = optional_field("top_k")
    min_p: float | None = optional_field("min_p")
    repeat_penalty: float | None = optional_field("repeat_penalty")
    dry_multiplier: float | None = optional_field("dry_multiplier")  # llama-server's DRY extension (0: off)
    max_tokens: int | None = optional_field("max_tokens")
    stop: Union[str, list[str], None] = None
    seed: int | None = optional_field("seed")
    n: int | None = documented(description="Ember generates one choice per request.", **_nullable({"const": 1}))
    stream: bool = False
    stream_options: StreamOptions | None = None
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    user: str | None = None


class EmberRouting(_Lenient):
    """Ember's own request field ``ember``: route between the small and the large tier for this request."""

    router: Policy | None = None  # None: the router settings' policy
    tier: Tier | None = None  # force a tier


def _needs_tools(choice_field: str = "tool_choice") -> dict[str, Any]:
    """The rule that a tool choice asking for a call (``required`` or a named function) comes with tools; the named
    function must be one of them, which JSON Schema cannot say."""
    return {"if": {"required": [choice_field],
                   "properties": {choice_field: {"anyOf": [{"const": "required"}, {"type": "object"}]}}},
            "then": {"required": ["tools"], "properties": {"tools": {"type": "array", "minItems": 1}}}}


_HAS_TOOLS = {"required": ["tools"], "properties": {"tools": {"type": "array", "minItems": 1}}}


class ChatCompletionRequest(_Sampling):
    """``POST /v1/chat/completions``. Fields Ember does not know are kept (``model_extra``) to be named in the
    reply's ``X-Ember-Ignored`` header."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"allOf": [
        _needs_tools(),
        {"if": {"required": ["top_logprobs"], "properties": {"top_logprobs": {"type": "integer"}}},
         "then": {"required": ["logprobs"], "properties": {"logprobs": {"const": True}}}},
        {"if": {"required": ["response_format"], "properties": {"response_format": {
            "type": "object", "required": ["type"], "properties": {"type": {"const": "json_schema"}}}}},
         "then": {"properties": {"response_format": {"required": ["json_schema"], "properties": {"json_schema": {
             "type": "object", "required": ["schema"], "properties": {"schema": {"type": "object"}}}}}}}},
        {"not": {**_HAS_TOOLS, "required": ["tools", "response_format"], "properties": {
            **_HAS_TOOLS["properties"], "response_format": {
                "type": "object", "required": ["type"], "properties": {"type": {"enum": ["json_object",
                                                                                        "json_schema"]}}}}}},
    ]})

    messages: list[ChatMessage] = Field(..., min_length=1)
    max_completion_tokens: int | None = optional_field("max_tokens")
    response_format: ResponseFormat | None = None
    tools: list[ChatTool] | None = Field(None, max_length=128)
    tool_choice: Union[Literal["none", "auto", "required"], NamedToolChoice, None] = None
    parallel_tool_calls: bool | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    reasoning_effort: str | None = Field(None, max_length=64, description=(
        "Accepted and ignored (named in the X-Ember-Ignored header): the model thinks as its template says."))
    ember: EmberRouting | None = None

    def ignored(self) -> list[str]:
        """The fields given that Ember does not act on, for the ``X-Ember-Ignored`` header."""
        names = [n for n in ("reasoning_effort",) if getattr(self, n) is not None]
        names += [n for n in ("frequency_penalty", "presence_penalty") if getattr(self, n)]
        return names + sorted(self.model_extra or {})


class CompletionRequest(_Sampling):
    """``POST /v1/completions``."""

    prompt: Union[str, list[str]] = documented(..., anyOf=[TEXT, {"type": "array", "items": TEXT, "minItems": 1,
                                                                  "maxItems": 1}],
                                               description="One prompt: a string or a list of one string.")
    echo: bool = False
    suffix: str | None = documented(description="Not supported (fill in the middle): empty or null.", **EMPTY)
    ember: EmberRouting | None = documented(description="Not supported: a raw prompt has no user turn for the "
                                                        "router to score.", type="null")
    logprobs: int | None = documented(description="Not supported: 0 or null.", anyOf=[{"const": 0},
                                                                                       {"type": "null"}])
    best_of: int | None = documented(description="Must be 1.", **_nullable({"const": 1}))


class EmbeddingRequest(_Lenient):
    """``POST /v1/embeddings``."""

    model: str = Field(..., min_length=1, max_length=1024)
    input: Union[str, list[str], list[int], list[list[int]]] = documented(..., **EMBED_INPUT)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = documented(description="Not supported: the vector size is the model's.",
                                        type="null")
    user: str | None = None


class OllamaOptions(_Lenient):
    """Ollama's ``options`` object (runtime options such as ``num_ctx`` are accepted and ignored)."""

    temperature: float | None = optional_field("temperature")
    top_p: float | None = optional_field("top_p")
    top_k: int | None = optional_field("top_k")
    min_p: float | None = optional_field("min_p")
    repeat_penalty: float | None = optional_field("repeat_penalty")
    repeat_last_n: int | None = optional_field("repeat_last_n")
    dry_multiplier: float | None = optional_field("dry_multiplier")  # as llama.cpp's DRY (0: off)
    num_predict: int | None = optional_field("max_tokens", ge=-2)  # -1, -2: until the context is full
    seed: int | None = optional_field("seed")
    stop: Union[str, list[str], None] = None


class OllamaFunctionCall(_Lenient):
    name: str = Field(..., min_length=1, max_length=64)
    arguments: dict[str, Any] = Field(default_factory=dict)


class OllamaToolCall(_Lenient):
    function: OllamaFunctionCall


class OllamaMessage(_Lenient):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    images: list[str] | None = documented(description="Not supported: no images.",
                                          **_nullable({"type": "array", "maxItems": 0}))
    tool_calls: list[OllamaToolCall] | None = None  # assistant
    tool_name: str | None = None  # tool


_OLLAMA_FORMAT = {"anyOf": [{"enum": ["", "json"]}, JSON_SCHEMA, {"type": "null"}]}
_OLLAMA_CONSTRAINED = {"required": ["format"], "properties": {"format": {"anyOf": [
    {"const": "json"}, {"type": "object", "minProperties": 1}]}}}


class OllamaChatRequest(_Lenient):
    """``POST /api/chat``."""

    model_config = ConfigDict(json_schema_extra={"allOf": [
        _needs_tools(),
        {"not": {"allOf": [_HAS_TOOLS, _OLLAMA_CONSTRAINED]}},  # 'format' and 'tools' cannot be combined
    ]})

    model: str = Field(..., min_length=1, max_length=1024)
    messages: list[OllamaMessage] = Field(default_factory=list)
    stream: bool = True
    format: Union[Literal["", "json"], dict[str, Any], None] = documented(**_OLLAMA_FORMAT)
    options: OllamaOptions | None = None
    tools: list[ChatTool] | None = Field(None, max_length=128)
    # Ember's extension (Ollama has none): OpenAI's tool choice, e.g. to force a call from a small model
    tool_choice: Union[Literal["none", "auto", "required"], NamedToolChoice, None] = None
    keep_alive: Union[float, str, None] = None
    ember: EmberRouting | None = None


class OllamaGenerateRequest(_Lenient):
    """``POST /api/generate``."""

    model_config = ConfigDict(json_schema_extra={"not": {  # a raw prompt cannot be routed
        "required": ["raw", "ember"], "properties": {"raw": {"const": True}, "ember": {"type": "object"}}}})

    model: str = Field(..., min_length=1, max_length=1024)
    prompt: str = ""
    system: str | None = None
    suffix: str | None = documented(description="Not supported (fill in the middle): empty or null.", **EMPTY)
    raw: bool = False
    stream: bool = True
    format: Union[Literal["", "json"], dict[str, Any], None] = documented(**_OLLAMA_FORMAT)
    options: OllamaOptions | None = None
    images: list[str] | None = documented(description="Not supported: no images.",
                                          **_nullable({"type": "array", "maxItems": 0}))
    keep_alive: Union[float, str, None] = None
    ember: EmberRouting | None = None  # not with ``raw``: a raw prompt has no user turn to score


class OllamaEmbedRequest(_Lenient):
    """``POST /api/embed``."""

    model: str = Field(..., min_length=1, max_length=1024)
    input: Union[str, list[str]] = documented(..., **EMBED_INPUT)
    truncate: bool | None = None
    options: OllamaOptions | None = None
    keep_alive: Union[float, str, None] = None


# -- Anthropic Messages -----------------------------------------------------------------------------------------


class AnthropicBlock(_Lenient):
    """A content block: ``text``, ``tool_use`` (assistant) or ``tool_result`` (user); others are refused."""

    type: str = Field(..., max_length=64)
    text: str | None = None
    id: str | None = Field(None, max_length=256)
    name: str | None = Field(None, max_length=64)
    input: dict[str, Any] | None = None
    tool_use_id: str | None = Field(None, max_length=256)
    content: Union[str, list[ContentPart], None] = None  # a tool result's text
    is_error: bool | None = None


def _blocks(*types: str, tool_use: bool = False) -> dict[str, Any]:
    """Content: a string or blocks of ``types`` (a ``tool_use`` block needs a ``name``)."""
    block: dict[str, Any] = {"type": "object", "required": ["type"], "properties": {"type": {"enum": list(types)}}}
    if tool_use:
        block = {**block, "if": {"properties": {"type": {"const": "tool_use"}}},
                 "then": {"required": ["name"], "properties": {"name": {"type": "string", "minLength": 1}}}}
    return {"anyOf": [{"type": "string"}, {"type": "array", "items": block}]}


_SKIPPED = ("thinking", "redacted_thinking")


class AnthropicMessage(_Lenient):
    """A message; a user's blocks are text and tool results, an assistant's text and tool uses."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"properties": {"role": {"const": "user"}, "content": _blocks("text", "tool_result", *_SKIPPED)}},
        {"properties": {"role": {"const": "assistant"},
                        "content": _blocks("text", "tool_use", *_SKIPPED, tool_use=True)}},
        {"properties": {"role": {"const": "system"}, "content": _blocks("text")}}]})

    role: Literal["user", "assistant", "system"]  # a system message joins the system prompt, in order
    content: Union[str, list[AnthropicBlock]]


_IGNORED = "Accepted and ignored: the reply's X-Ember-Ignored header names it."


class AnthropicTool(_Lenient):
    name: str = Field(..., min_length=1, max_length=64, json_schema_extra={"pattern": NAME_RE.pattern})
    description: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"}, json_schema_extra={
        **TOOL_SCHEMA, "properties": {"type": {"const": "object"}}})
    type: str | None = documented(description="'custom' or absent: server tools are not supported.",
                                  **_nullable({"const": "custom"}))


class AnthropicToolChoice(_Lenient):
    model_config = ConfigDict(json_schema_extra={"if": {"properties": {"type": {"const": "tool"}}},
                                                 "then": {"required": ["name"], "properties": {"name": TEXT}}})

    type: Literal["auto", "any", "tool", "none"]
    name: str | None = Field(None, max_length=64)
    disable_parallel_tool_use: bool | None = None


class MessagesRequest(_Lenient):
    """``POST /v1/messages`` (Anthropic's shape; also ``/v1/messages/count_tokens``). Fields Ember does not know
    are kept (``model_extra``) to be named in the reply's ``X-Ember-Ignored`` header."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"allOf": [
        # a choice that asks for a call comes with tools
        {"if": {"required": ["tool_choice"], "properties": {"tool_choice": {
            "type": "object", "required": ["type"], "properties": {"type": {"enum": ["any", "tool"]}}}}},
         "then": _HAS_TOOLS},
        # system messages join the system prompt: a user or assistant turn is needed besides them
        {"properties": {"messages": {"contains": {"type": "object", "required": ["role"],
                                                  "properties": {"role": {"enum": ["user", "assistant"]}}}}}}]})

    model: str = Field(..., min_length=1, max_length=1024)
    max_tokens: int = Field(..., ge=1, le=MAX_TOKENS_LIMIT)
    messages: list[AnthropicMessage] = Field(..., min_length=1)
    system: Union[str, list[AnthropicBlock], None] = documented(anyOf=[_blocks("text"), {"type": "null"}])
    stop_sequences: list[str] | None = Field(None, max_length=16)
    temperature: float | None = optional_field("temperature", le=1.0)  # Anthropic's bound
    top_p: float | None = optional_field("top_p")
    top_k: int | None = optional_field("top_k")
    stream: bool = False
    tools: list[AnthropicTool] | None = Field(None, max_length=128)
    tool_choice: AnthropicToolChoice | None = None
    metadata: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = Field(None, description=_IGNORED)
    context_management: dict[str, Any] | None = Field(None, description=_IGNORED)
    output_config: dict[str, Any] | None = Field(None, description=_IGNORED)
    ember: EmberRouting | None = None

    def ignored(self) -> list[str]:
        """The fields given that Ember does not act on, for the ``X-Ember-Ignored`` header."""
        names = [n for n in ("context_management", "output_config") if getattr(self, n) is not None]
        if self.thinking is not None and self.thinking.get("type") != "disabled":
            names.insert(0, "thinking")
        return names + sorted(self.model_extra or {})


class CountTokensRequest(MessagesRequest):
    """``POST /v1/messages/count_tokens``: a Messages body, ``max_tokens`` optional."""

    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)


# -- OpenAI Responses -------------------------------------------------------------------------------------------


class ResponseContentPart(_Lenient):
    type: str = Field(..., max_length=64)  # input_text / output_text (images are refused)
    text: str | None = None


_PARTS = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object", "required": ["type"],
                                                                     "properties": {"type": {"enum": [
                                                                         "input_text", "output_text", "text",
                                                                         "refusal"]}}}}, {"type": "null"}]}
_INPUT_ITEM = {"type": "object", "anyOf": [
    {"required": ["role"], "properties": {"type": {"anyOf": [{"const": "message"}, {"type": "null"}]},
                                          "role": {"enum": ["user", "assistant", "system", "developer"]},
                                          "content": _PARTS}},
    {"required": ["type", "name"], "properties": {"type": {"const": "function_call"}, "name": TEXT}},
    {"required": ["type"], "properties": {"type": {"const": "function_call_output"}, "output": _PARTS}},
    {"required": ["type"], "properties": {"type": {"const": "reasoning"}}}]}
# At least one item that is not a system message: a user or assistant message, a call or a call's output.
_NOT_ONLY_SYSTEM = {"anyOf": [
    {"required": ["type"], "properties": {"type": {"enum": ["function_call", "function_call_output"]}}},
    {"required": ["role"], "properties": {"type": {"anyOf": [{"const": "message"}, {"type": "null"}]},
                                          "role": {"enum": ["user", "assistant"]}}}]}


class ResponseInputItem(_Lenient):
    """An item of ``input``: a message (``role`` + ``content``), a ``function_call`` or a
    ``function_call_output``; ``reasoning`` items are skipped."""

    model_config = ConfigDict(json_schema_extra={"anyOf": _INPUT_ITEM["anyOf"]})

    type: str | None = Field(None, max_length=64)
    role: Literal["user", "assistant", "system", "developer"] | None = None
    content: Union[str, list[ResponseContentPart], None] = None
    call_id: str | None = Field(None, max_length=256)
    name: str | None = Field(None, max_length=64)
    arguments: str | None = documented(**_nullable(JSON_OBJECT_TEXT))
    output: Union[str, list[ResponseContentPart], None] = None
    id: str | None = Field(None, max_length=256)


class ResponseTool(_Lenient):
    """A tool: only functions, with a name."""

    model_config = ConfigDict(json_schema_extra={"required": ["type", "name"]})

    type: str = documented(..., const="function")
    name: str | None = documented(**TOOL_NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = documented(**_nullable({**TOOL_SCHEMA, "properties": {"type": {
        "const": "object"}}}))
    strict: bool | None = None


class ResponseNamedChoice(_Lenient):
    type: Literal["function"]
    name: str = Field(..., min_length=1, max_length=64)


class ResponseTextFormat(_Lenient):
    type: str = documented("text", const="text", description="Only text output ('text').")


class ResponseText(_Lenient):
    format: ResponseTextFormat | None = None


class ResponsesRequest(_Lenient):
    """``POST /v1/responses`` (stateless: nothing is stored)."""

    model_config = ConfigDict(json_schema_extra={"allOf": [
        _needs_tools(),
        {"if": {"properties": {"input": {"type": "string"}}}, "then": {"properties": {"input": TEXT}}},
        {"if": {"properties": {"input": {"type": "array"}}},
         "then": {"properties": {"input": {"contains": _NOT_ONLY_SYSTEM}}}}]})

    model: str = Field(..., min_length=1, max_length=1024)
    input: Union[str, list[ResponseInputItem]]
    instructions: str | None = None
    tools: list[ResponseTool] | None = Field(None, max_length=128)
    tool_choice: Union[Literal["none", "auto", "required"], ResponseNamedChoice, None] = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = optional_field("max_tokens")
    temperature: float | None = optional_field("temperature", le=2.0)  # OpenAI's bound
    top_p: float | None = optional_field("top_p")
    stream: bool = False
    store: bool | None = None
    previous_response_id: str | None = documented(
        description="Not supported (nothing is stored): send the whole conversation in 'input'.", **EMPTY)
    text: ResponseText | None = None
    metadata: dict[str, Any] | None = None
    user: str | None = None
    ember: EmberRouting | None = None
