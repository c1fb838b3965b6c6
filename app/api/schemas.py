"""Request bodies of the OpenAI- and Ollama-compatible routes (pydantic; also the served OpenAPI schema).

Fields that clients commonly send but Ember does not use (``user``, ``presence_penalty``, Ollama's ``num_ctx``...)
are accepted and ignored; fields that would change the answer in a way Ember cannot honour (``n`` > 1, tools,
images) are refused with a 400 by the routes.
"""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ContentPart(_Lenient):
    """One part of a multi-part message; only ``text`` parts are supported."""

    type: str
    text: str | None = None


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Union[str, list[ContentPart], None] = None
    name: str | None = None


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
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0, le=1000)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(None, ge=0.5, le=2.0)
    dry_multiplier: float | None = Field(None, ge=0.0, le=5.0)  # llama-server's DRY extension (0: off)
    max_tokens: int | None = Field(None, ge=1, le=131072)
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

    router: Literal["off", "auto", "cascade"] | None = None  # None: the router settings' policy
    tier: Literal["small", "large"] | None = None  # force a tier


class ChatCompletionRequest(_Sampling):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(..., min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, le=131072)
    response_format: ResponseFormat | None = None
    tools: list[dict[str, Any]] | None = None
    logprobs: bool | None = None
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

    temperature: float | None = Field(None, ge=0.0, le=5.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0, le=1000)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(None, ge=0.5, le=2.0)
    repeat_last_n: int | None = Field(None, ge=0, le=4096)
    dry_multiplier: float | None = Field(None, ge=0.0, le=5.0)  # as llama.cpp's DRY (0: off)
    num_predict: int | None = Field(None, ge=-2, le=131072)
    seed: int | None = None
    stop: Union[str, list[str], None] = None


class OllamaMessage(_Lenient):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    images: list[str] | None = None


class OllamaChatRequest(_Lenient):
    """``POST /api/chat``."""

    model: str = Field(..., min_length=1, max_length=1024)
    messages: list[OllamaMessage] = Field(default_factory=list)
    stream: bool = True
    format: Union[Literal["", "json"], dict[str, Any], None] = None
    options: OllamaOptions | None = None
    tools: list[dict[str, Any]] | None = None
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
