"""Fitting a conversation into the context: the searched cut equals dropping the oldest turns one at a time."""

from __future__ import annotations

import random

from inference.chat_prompt import fit_chat_prompt, model_template
from inference.llama_model import ContextParams, LlamaModel
from tests.helpers import starter_path


def _drop_one_at_a_time(model: LlamaModel, msgs: list[dict[str, str]], max_tokens: int) -> tuple[int, int]:
    """The plain rule, as a reference: drop the oldest turn (a user/assistant pair together) until it fits."""
    template = model_template(model)
    budget = model.n_ctx - min(max_tokens, model.n_ctx // 4)
    system, body, dropped = msgs[:1], msgs[1:], 0
    prompt = model.tokenize(template.render(system + body), add_special=True, parse_special=True)
    while len(prompt) > budget and len(body) > 1:
        step = 2 if len(body) > 2 and body[0]["role"] == "user" and body[1]["role"] == "assistant" else 1
        body, dropped = body[step:], dropped + step
        prompt = model.tokenize(template.render(system + body), add_special=True, parse_special=True)
    return dropped, len(prompt)


def test_the_fewest_dropped_turns_that_fit_are_found():
    model = LlamaModel(starter_path(), ContextParams(n_ctx=512, n_threads=1))
    rng = random.Random(5)
    try:
        for turns in (1, 2, 5, 9, 16, 31):
            msgs = [{"role": "system", "content": "You are terse."}]
            for i in range(turns):
                msgs.append({"role": "user", "content": f"Question {i}: " + "why " * rng.randint(1, 60)})
                msgs.append({"role": "assistant", "content": "Because " * rng.randint(1, 60)})
            msgs.append({"role": "user", "content": "And now?"})
            fitted = fit_chat_prompt(model, msgs, 64)
            assert (fitted.dropped, len(fitted.tokens)) == _drop_one_at_a_time(model, msgs, 64), turns
            assert len(fitted.tokens) <= 512 - 64
    finally:
        model.close()
