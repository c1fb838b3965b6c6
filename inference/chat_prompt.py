"""A conversation as prompt tokens: the model's own chat template, oldest turns dropped until a reply fits.

The engine's ``chat`` job and the router's glimpse both build their prompt here, so a glimpse and the answer that
follows share the cached prefix, also in a conversation longer than the context.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from inference.chat_template import ChatTemplate
from inference.errors import EngineError
from inference.kv_state import common_prefix
from inference.llama_model import LlamaModel

_TEMPLATES: "weakref.WeakKeyDictionary[LlamaModel, ChatTemplate]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class ChatPrompt:
    """Prompt tokens, how many leading tokens a context shift must keep, and how many messages were dropped."""

    tokens: list[int]
    keep: int
    dropped: int


def model_template(model: LlamaModel) -> ChatTemplate:
    """The model's own chat template (made once per loaded model).

    Raises:
        EngineError: the model's template cannot be used.
    """
    template = _TEMPLATES.get(model)
    if template is None:
        template = ChatTemplate(model.chat_template(), bos_token=model.token_text(model.bos_id),
                                eos_token=model.token_text(model.eos_id), strip_bos=model.add_bos)
        _TEMPLATES[model] = template
    return template


def fit_chat_prompt(model: LlamaModel, messages: Sequence[Mapping[str, Any]], max_tokens: int, *,
                    tools: list[dict[str, Any]] | None = None) -> ChatPrompt:
    """The prompt for ``messages``, dropping the oldest turns until it leaves room for a reply.

    ``tools``: tool definitions for a template that renders them itself (see :mod:`inference.tools`); messages
    then keep their ``tool_calls``, ``tool_call_id`` and ``name``.

    The leading system prompt is always kept (with the first tokens it forms the attention sinks).

    Raises:
        EngineError: the last message alone does not fit the context, or the template rejected the messages.
    """
    template = model_template(model)
    msgs = [{"role": m["role"], "content": m["content"],
             **{k: m[k] for k in ("tool_calls", "tool_call_id", "name") if m.get(k)}} for m in messages]

    def tokens(ms: list[dict[str, Any]]) -> list[int]:
        return model.tokenize(template.render(ms, tools=tools), add_special=True, parse_special=True)

    budget = model.n_ctx - min(max_tokens, model.n_ctx // 4)
    system = msgs[:1] if msgs and msgs[0]["role"] == "system" else []
    body = msgs[len(system):]
    cuts = [0]  # where the kept turns may start: the oldest turn (a user/assistant pair together) goes first
    while len(body) - cuts[-1] > 1:
        c = cuts[-1]
        pair = len(body) - c > 2 and body[c]["role"] == "user" and body[c + 1]["role"] == "assistant"
        cuts.append(c + (2 if pair else 1))
    rendered: dict[int, list[int]] = {}

    def kept_from(i: int) -> list[int]:
        if i not in rendered:
            rendered[i] = tokens(system + body[cuts[i]:])
        return rendered[i]

    lo, hi = 0, len(cuts) - 1
    if hi > 0 and len(kept_from(0)) > budget:  # dropping more never lengthens it: search the fewest drops that fit
        lo = 1
        while lo < hi:
            mid = (lo + hi) // 2
            if len(kept_from(mid)) <= budget:
                hi = mid
            else:
                lo = mid + 1
    prompt, dropped = kept_from(lo), cuts[lo]
    if len(prompt) >= model.n_ctx:
        raise EngineError(f"The message is {len(prompt)} tokens, longer than the {model.n_ctx}-token context. "
                          "Shorten it, or raise the context length in settings.")
    keep = min(4, len(prompt))  # attention sinks
    if system:
        try:
            keep = max(keep, common_prefix(tokens(system), prompt))
        except EngineError:  # a template that refuses a system prompt on its own
            pass
    return ChatPrompt(prompt, keep, dropped)
