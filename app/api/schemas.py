"""Request bodies of the OpenAI- and Ollama-compatible routes (pydantic; also the served OpenAPI schema).

Fields that clients commonly send but Ember does not use (``user``, ``presence_penalty``, Ollama's ``num_ctx``...)
are accepted and ignored; fields that would change the answer in a way Ember cannot honour (``n`` > 1, tools,
images) are refused with a 400 by the routes.
"""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from inference.router import Policy, Tier
from inference.sampling import MAX_TOKENS_LIMIT, optional_field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ContentPart(_Lenient):
    """One part of a multi-part message; only ``text`` parts are supported."""

    type: str
    text: str | None = None


class FunctionCallIn(_Lenient):
    name: str = Field(..., min_length=1, max_length=64)
    arguments: str = ""  # JSON text, as OpenAI sends it


class ToolCallIn(_Lenient):
    """A call in an earlier assistant message."""

    id: str = Field("", max_length=256)
    type: Literal["function"] = "function"
    function: FunctionCallIn


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Union[str, list[ContentPart], None] = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None  # assistant
    tool_call_id: str | None = Field(None, max_length=256)  # tool


class FunctionDef(_Lenient):
    name: str = Field(..., min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
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
    schema_: dict[str, Any] | None = Field(None, alias="schema")
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
    seed: int | None = None
    n: int | None = Field(None, ge=1, le=128)
    stream: bool = False
    stream_options: StreamOptions | None = None
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    user: str | None = None


class EmberRouting(_Lenient):
    """Ember's own request field ``ember``: route between the small and the large tier for this request."""

    router: Policy | None = None  # None: the router settings' policy
    tier: Tier | None = None  # force a tier


class ChatCompletionRequest(_Sampling):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(..., min_length=1)
    max_completion_tokens: int | None = optional_field("max_tokens")
    response_format: ResponseFormat | None = None
    tools: list[ChatTool] | None = Field(None, max_length=128)
    tool_choice: Union[Literal["none", "auto", "required"], NamedToolChoice, None] = None
    parallel_tool_calls: bool | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    ember: EmberRouting | None = None


class CompletionRequest(_Sampling):
    """``POST /v1/completions``."""

    prompt: Union[str, list[str]]
    echo: bool = False
    suffix: str | None = None
    ember: EmberRouting | None = None  # refused: a raw prompt has no user turn to score
    logprobs: int | None = None
    best_of: int | None = Field(None, ge=1, le=128)


class EmbeddingRequest(_Lenient):
    """``POST /v1/embeddings``."""

    model: str = Field(..., min_length=1, max_length=1024)
    input: Union[str, list[str], list[int], list[list[int]]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
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
    seed: int | None = None
    stop: Union[str, list[str], None] = None


class OllamaFunctionCall(_Lenient):
    name: str = Field(..., min_length=1, max_length=64)
    arguments: dict[str, Any] = Field(default_factory=dict)


class OllamaToolCall(_Lenient):
    function: OllamaFunctionCall


class OllamaMessage(_Lenient):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    images: list[str] | None = None
    tool_calls: list[OllamaToolCall] | None = None  # assistant
    tool_name: str | None = None  # tool


class OllamaChatRequest(_Lenient):
    """``POST /api/chat``."""

    model: str = Field(..., min_length=1, max_length=1024)
    messages: list[OllamaMessage] = Field(default_factory=list)
    stream: bool = True
    format: Union[Literal["", "json"], dict[str, Any], None] = None
    options: OllamaOptions | None = None
    tools: list[ChatTool] | None = Field(None, max_length=128)
    # Ember's extension (Ollama has none): OpenAI's tool choice, e.g. to force a call from a small model
    tool_choice: Union[Literal["none", "auto", "required"], NamedToolChoice, None] = None
    keep_alive: Union[float, str, None] = None
    ember: EmberRouting | None = None


class OllamaGenerateRequest(_Lenient):
    """``POST /api/generate``."""

    model: str = Field(..., min_length=1, max_length=1024)
    prompt: str = ""
    system: str | None = None
    suffix: str | None = None
    raw: bool = False
    stream: bool = True
    format: Union[Literal["", "json"], dict[str, Any], None] = None
    options: OllamaOptions | None = None
    images: list[str] | None = None
    keep_alive: Union[float, str, None] = None
    ember: EmberRouting | None = None  # not with ``raw``: a raw prompt has no user turn to score


class OllamaEmbedRequest(_Lenient):
    """``POST /api/embed``."""

    model: str = Field(..., min_length=1, max_length=1024)
    input: Union[str, list[str]]
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


class AnthropicMessage(_Lenient):
    role: Literal["user", "assistant"]
    content: Union[str, list[AnthropicBlock]]


class AnthropicTool(_Lenient):
    name: str = Field(..., min_length=1, max_length=64)
    description: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    type: str | None = None  # "custom" or absent; server tools are refused


class AnthropicToolChoice(_Lenient):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = Field(None, max_length=64)
    disable_parallel_tool_use: bool | None = None


class MessagesRequest(_Lenient):
    """``POST /v1/messages`` (Anthropic's shape)."""

    model: str = Field(..., min_length=1, max_length=1024)
    max_tokens: int = Field(..., ge=1, le=MAX_TOKENS_LIMIT)
    messages: list[AnthropicMessage] = Field(..., min_length=1)
    system: Union[str, list[AnthropicBlock], None] = None
    stop_sequences: list[str] | None = Field(None, max_length=16)
    temperature: float | None = optional_field("temperature", le=1.0)  # Anthropic's bound
    top_p: float | None = optional_field("top_p")
    top_k: int | None = optional_field("top_k")
    stream: bool = False
    tools: list[AnthropicTool] | None = Field(None, max_length=128)
    tool_choice: AnthropicToolChoice | None = None
    metadata: dict[str, Any] | None = None
    ember: EmberRouting | None = None


# -- OpenAI Responses -------------------------------------------------------------------------------------------


class ResponseContentPart(_Lenient):
    type: str = Field(..., max_length=64)  # input_text / output_text (images are refused)
    text: str | None = None


class ResponseInputItem(_Lenient):
    """An item of ``input``: a message (``role`` + ``content``), a ``function_call`` or a
    ``function_call_output``; ``reasoning`` items are skipped."""

    type: str | None = Field(None, max_length=64)
    role: Literal["user", "assistant", "system", "developer"] | None = None
    content: Union[str, list[ResponseContentPart], None] = None
    call_id: str | None = Field(None, max_length=256)
    name: str | None = Field(None, max_length=64)
    arguments: str | None = None
    output: Union[str, list[ResponseContentPart], None] = None
    id: str | None = Field(None, max_length=256)


class ResponseTool(_Lenient):
    type: str = Field(..., max_length=64)  # only "function"
    name: str | None = Field(None, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ResponseNamedChoice(_Lenient):
    type: Literal["function"]
    name: str = Field(..., min_length=1, max_length=64)


class ResponseTextFormat(_Lenient):
    type: str = "text"


class ResponseText(_Lenient):
    format: ResponseTextFormat | None = None


class ResponsesRequest(_Lenient):
    """``POST /v1/responses`` (stateless: nothing is stored)."""

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
    previous_response_id: str | None = None
    text: ResponseText | None = None
    metadata: dict[str, Any] | None = None
    user: str | None = None
    ember: EmberRouting | None = None
