"""Rendering a conversation into a prompt with the model's own chat template."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jinja2
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from inference.errors import EngineError

# Used only when a GGUF file carries no template: ChatML, which llama.cpp also falls back to.
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
    "'\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class ChatTemplate:
    """A model's Jinja chat template, rendered the way Hugging Face transformers renders it."""

    def __init__(self, template: str | None, *, bos_token: str, eos_token: str, strip_bos: bool) -> None:
        self.source = template or CHATML
        self.is_fallback = template is None
        self._bos = bos_token
        self._strip_bos = strip_bos
        try:
            self._formatter = Jinja2ChatFormatter(self.source, eos_token=eos_token, bos_token=bos_token,
                                                  add_generation_prompt=True)
        except jinja2.TemplateError as exc:
            raise EngineError(f"The model's chat template is not valid Jinja ({exc}).") from exc

    def render(self, messages: Sequence[Mapping[str, Any]], *, tools: list[dict[str, Any]] | None = None) -> str:
        """The prompt text for ``messages``, ending where the assistant's reply begins (``tools``: definitions in
        OpenAI's shape, passed to the template as transformers passes them).

        The BOS token text is removed from the front when the tokenizer adds BOS itself, so it is never doubled.

        Raises:
            EngineError: the template rejected the messages (e.g. roles out of order).
        """
        try:
            prompt = self._formatter(messages=[dict(m) for m in messages], tools=tools).prompt
        except (jinja2.TemplateError, ValueError, TypeError) as exc:
            raise EngineError(f"The model's chat template could not format this conversation: {exc}") from exc
        if self._strip_bos and self._bos and prompt.startswith(self._bos):
            prompt = prompt[len(self._bos):]
        return prompt
