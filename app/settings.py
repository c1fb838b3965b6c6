"""Every user setting, declared once: type, default, bounds and description.

The CLI flags, the settings dialog and the API all read this declaration. Settings persist as JSON in
``settings.json`` under the data root; unknown keys from newer versions are kept out, bad values are refused
with a message naming the setting.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from inference.router import Policy
from inference.sampling import SamplingOptions
from storage.errors import EmberError


class SettingsError(EmberError, ValueError):
    """The settings file or a setting value is invalid."""


class EngineSettings(BaseModel):
    """How models are loaded and run."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    n_ctx: int = Field(4096, ge=256, le=1 << 20, description="Context length in tokens (prompt + reply).")
    n_batch: int = Field(512, ge=32, le=8192, description="Tokens evaluated per decode call while "
                                                          "reading the prompt.")
    n_threads: int | None = Field(None, ge=1, le=512, description="CPU threads for generation "
                                                                  "(empty: the number of physical cores).")
    adapt_threads: bool = Field(True, description="Use fewer threads while other programs keep cores busy, and "
                                                  "more again when they free up (measured on every decode).")
    n_gpu_layers: int = Field(-1, ge=-1, le=10000, description="Layers offloaded to the GPU "
                                                               "(-1: as many as the model has).")
    flash_attn: bool | None = Field(None, description="Flash attention (empty: off on CPU-only builds, where it "
                                                      "slows long chats; llama.cpp decides on GPUs).")
    prefill_chunk: int | None = Field(None, ge=16, le=8192, description="Most prompt tokens read per step "
                                                                        "while other replies stream (empty: "
                                                                        "128 on a CPU, 512 with a GPU); "
                                                                        "smaller keeps streams smoother.")
    state_cache_ram_mb: int = Field(512, ge=0, le=65536, description="Memory for saved conversation states "
                                                                    "(instant switching back), in MiB.")
    state_cache_disk_mb: int = Field(2048, ge=0, le=1 << 20, description="Disk space for saved conversation "
                                                                         "states under cache/, in MiB.")


class ChatSettings(BaseModel):
    """Defaults for new conversations."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model: str = Field("default", min_length=1, description="Library model (name, alias or .gguf path) "
                                                            "used for new chats.")
    system_prompt: str = Field("You are a helpful assistant.", max_length=100_000,
                               description="System prompt for new chats (empty: none).")
    stream_flush_interval: float = Field(0.5, gt=0.0, le=0.5, description="Seconds between saves of a "
                                                                           "reply while it streams.")


class ApiSettings(BaseModel):
    """The local HTTP API (OpenAI- and Ollama-compatible) that other programs on this machine use."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: bool = Field(False, description="Run the local API while the desktop app runs.")
    host: str = Field("127.0.0.1", min_length=1, description="Address the API listens on (127.0.0.1: this "
                                                             "machine only).")
    port: int = Field(8765, ge=0, le=65535, description="TCP port of the API (0: any free port).")
    auth: bool = Field(True, description="Require the API token (Authorization: Bearer ...) on every request.")
    allowed_hosts: list[str] = Field(default_factory=list, description="Extra Host header names accepted "
                                                                       "besides loopback ones.")
    allowed_origins: list[str] = Field(default_factory=list, description="Web origins allowed to call the "
                                                                         "API from a browser (CORS).")
    max_queue: int = Field(16, ge=1, le=1024, description="API requests waiting or running at once; more are "
                                                          "refused with 503.")
    parallel: int | None = Field(None, ge=1, le=32, description="API replies generated at once, batched "
                                                                "(empty: 4 on a CPU, 8 with a GPU); the "
                                                                "desktop's turn always gets a slot of its "
                                                                "own. Applies at the next start.")
    max_body_bytes: int = Field(8 << 20, ge=1024, le=1 << 30, description="Largest request body, in bytes.")
    request_timeout: float = Field(600.0, gt=0.0, le=86400.0, description="Seconds a request may wait and run "
                                                                          "before it is cancelled.")
    keep_alive: float = Field(300.0, ge=0.0, le=86400.0, description="Seconds a model loaded for an API "
                                                                     "request stays loaded when idle "
                                                                     "(0: until replaced).")
    access_log: bool = Field(False, description="Log every API request line.")


class DesktopSettings(BaseModel):
    """The desktop window and its tray icon."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    close_to_tray: bool = Field(True, description="Closing the window keeps Ember running in the system tray "
                                                  "(where a tray exists).")
    start_on_login: bool = Field(False, description="Start Ember when you log in (XDG autostart on Linux, a "
                                                    "LaunchAgent on macOS, the Run key on Windows).")
    theme: Literal["system", "light", "dark"] = Field("system", description="Colours of the window: system "
                                                                           "(follows the system's light or dark "
                                                                           "scheme), light or dark.")


class SpeculativeSettings(BaseModel):
    """Speculative decoding: a small draft model or prompt lookup proposes tokens the model verifies in one batch."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    mode: Literal["off", "lookup", "draft"] = Field("off", description="Default for every model: off, lookup "
                                                                        "(reuse text from the conversation) or "
                                                                        "draft (a small draft model).")
    draft_model: str | None = Field(None, description="Library draft model used when the mode is draft.")
    per_model: dict[str, str] = Field(default_factory=dict, description="Per-model default, overriding the mode: "
                                                                        "model name -> 'off', 'lookup' or a "
                                                                        "draft model name.")
    adaptive: bool = Field(True, description="Adapt the draft length to recent acceptance and pause drafting "
                                             "where it does not pay.")
    max_draft: int = Field(8, ge=1, le=32, description="Most tokens drafted per step.")


class RouterSettings(BaseModel):
    """The router: a small model answers easy queries and escalates hard ones to a large tier."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    policy: Policy = Field("off", description="off (one model), auto (decide before answering) or cascade (the "
                                              "small model answers first, escalates when unsure).")
    budget: float = Field(0.25, ge=0.0, le=1.0, description="Target share of queries escalated to the large "
                                                            "tier; the threshold is calibrated to hold it.")
    large_model: str | None = Field(None, description="Large tier: a library model (name, alias or .gguf path).")
    large_keep_alive: float = Field(600.0, ge=0.0, le=86400.0, description="Seconds a local large tier stays "
                                                                           "loaded beside the chat model after "
                                                                           "its last answer.")
    remote_url: str | None = Field(None, description="Large tier: base URL of an OpenAI-compatible server "
                                                     "(e.g. http://host:8000/v1); used instead of large_model.")
    remote_model: str | None = Field(None, description="Model name on the remote server (empty: its first "
                                                       "model).")
    remote_key: str = Field("router-remote", min_length=1, description="Name of the keyring secret holding the "
                                                                       "remote server's API key.")
    connect_timeout: float = Field(5.0, gt=0.0, le=300.0, description="Seconds to wait for the remote server "
                                                                      "to accept the connection.")
    read_timeout: float = Field(60.0, gt=0.0, le=3600.0, description="Seconds to wait for each piece of the "
                                                                     "remote reply.")
    total_timeout: float = Field(300.0, gt=0.0, le=86400.0, description="Most seconds a remote reply may take "
                                                                        "in all.")
    retries: int = Field(2, ge=0, le=10, description="Retries of a remote request that failed before any text "
                                                     "arrived.")
    glimpse_tokens: int = Field(2, ge=1, le=16, description="Answer tokens the small model decodes to judge "
                                                            "its own certainty before deciding (auto).")
    min_calibration: int = Field(30, ge=1, le=100_000, description="Stored scores needed before the threshold "
                                                                   "is calibrated from them.")
    default_threshold: float = Field(0.5, ge=0.0, le=1.0, description="Score threshold used until enough "
                                                                      "scores are stored.")
    agreement_samples: int = Field(4, ge=0, le=8, description="Short sampled continuations of the small answer "
                                                              "compared with it in cascade, when the score model "
                                                              "weighs them (0: never); they run batched.")
    learn: bool = Field(True, description="Score turns with what the router learned from your choices (asking "
                                          "the large model again after a small answer, or going on from it); off: "
                                          "the shipped weights. Your choices are kept and learned from either way.")


class McpSettings(BaseModel):
    """Tools through MCP (Model Context Protocol) servers that the model may call in the desktop chat, each switched
    on per conversation; every call is shown and asked about before it runs."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    servers: dict[str, str] = Field(default_factory=dict, description="MCP servers by name: a command line that "
                                                                     "starts a stdio server (leading NAME=value "
                                                                     "words set its environment), or the "
                                                                     "http(s):// URL of a streamable HTTP server.")
    start_timeout: float = Field(30.0, gt=0.0, le=600.0, description="Seconds a server may take to start and "
                                                                     "list its tools.")
    call_timeout: float = Field(60.0, gt=0.0, le=3600.0, description="Seconds a tool call may run before it is "
                                                                     "given up.")

    @field_validator("servers")
    @classmethod
    def _check_servers(cls, servers: dict[str, str]) -> dict[str, str]:
        from app.services.mcp_servers import parse_server

        for name, spec in servers.items():
            parse_server(name, spec)  # raises ValueError with what is wrong
        return servers


class AttachmentSettings(BaseModel):
    """Files attached to chat messages."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    whole_share: float = Field(0.5, gt=0.0, le=0.9, description="Share of the context a file may fill and "
                                                                "still be sent whole; longer files are split "
                                                                "and the relevant parts retrieved per question.")
    chunk_chars: int = Field(800, ge=200, le=8000, description="Characters per part of a split file.")
    max_chars: int = Field(2_000_000, ge=10_000, le=50_000_000, description="Most characters of one file Ember "
                                                                            "keeps; the rest is cut (you are "
                                                                            "told).")
    max_file_mb: int = Field(50, ge=1, le=2048, description="Largest file that can be attached, in MiB.")


class Settings(BaseModel):
    """All of Ember's settings."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    engine: EngineSettings = Field(default_factory=EngineSettings)
    chat: ChatSettings = Field(default_factory=ChatSettings)
    sampling: SamplingOptions = Field(default_factory=SamplingOptions)
    api: ApiSettings = Field(default_factory=ApiSettings)
    desktop: DesktopSettings = Field(default_factory=DesktopSettings)
    speculative: SpeculativeSettings = Field(default_factory=SpeculativeSettings)
    router: RouterSettings = Field(default_factory=RouterSettings)
    mcp: McpSettings = Field(default_factory=McpSettings)
    attachments: AttachmentSettings = Field(default_factory=AttachmentSettings)


def load_settings(path: Path) -> Settings:
    """Read settings from ``path``; defaults when the file does not exist.

    Raises:
        SettingsError: the file is not valid JSON or holds a value out of bounds.
    """
    if not path.exists():
        return Settings()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Settings.model_validate(data)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"The settings file {path} is not valid JSON ({exc}). Fix it or delete it to "
                            "go back to the defaults.") from exc
    except ValidationError as exc:
        raise SettingsError(f"The settings file {path} has an invalid value: {describe_validation(exc)}. "
                            "Fix it or delete it to go back to the defaults.") from exc


def save_settings(settings: Settings, path: Path) -> None:
    """Write settings atomically (a crash never leaves a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(settings.model_dump_json(indent=2))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def describe_validation(exc: ValidationError) -> str:
    """A one-line summary of a pydantic validation error: ``field.path: problem; ...``."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "value"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
