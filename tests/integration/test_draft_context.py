"""Drafters at their limits: a draft context smaller than the conversation, and a drafter swap that fails."""

from __future__ import annotations

import logging

import pytest

import inference.spec_runtime as rt
from inference.draft_control import DraftController
from inference.drafters import ModelDrafter
from inference.engine import EngineService, ModelSpec
from inference.errors import ModelLoadError
from inference.llama_model import ContextParams, LlamaModel
from inference.sampling import SamplingOptions
from inference.spec_runtime import SpeculativeConfig
from inference.speculative import generate_speculative
from tests.helpers import starter_path

GREEDY = SamplingOptions(temperature=0.0, repeat_penalty=1.0, max_tokens=48, stop_loops=False)  # as plain greedy_run
CODE = ("def area(width, height):\n    result = width * height\n    return result\n\n"
        "def perimeter(width, height):\n    result = 2 * (width + height)\n    return result\n")
COPY_PROMPT = ("<|im_start|>user\nCopy this code exactly, then stop:\n" + CODE + "<|im_end|>\n"
               "<|im_start|>assistant\n```python\n")


def test_a_conversation_longer_than_the_draft_context_goes_on_without_drafts(caplog: pytest.LogCaptureFixture):
    target = LlamaModel(starter_path(), ContextParams(n_ctx=1024, n_threads=1))
    draft = LlamaModel(starter_path(), ContextParams(n_ctx=256, n_threads=1))  # as if clamped to its training
    try:
        assert draft.n_ctx < target.n_ctx
        prompt = target.tokenize("Some notes to keep in mind. " * 23 + "\n" + COPY_PROMPT, add_special=True)
        assert draft.n_ctx - 40 < len(prompt) < draft.n_ctx - 8  # drafting starts, then the reply outgrows it
        out: list[int] = []
        stats = generate_speculative(target, ModelDrafter(draft, p_min=0.0), prompt, GREEDY,
                                     should_stop=lambda: False, on_text=lambda t: None, on_token=out.append,
                                     controller=DraftController(max_draft=4, adaptive=False))
        assert stats.finish_reason == "length" and stats.completion_tokens == GREEDY.max_tokens
        assert len(prompt) + len(out) > draft.n_ctx
        assert stats.drafted > 0, "drafting must work while the conversation fits the draft context"
        assert len(draft.tokens) <= draft.n_ctx
        notes = [r for r in caplog.records if "outgrew" in r.getMessage()]
        assert len(notes) == 1 and notes[0].levelno == logging.INFO, [r.getMessage() for r in notes]
    finally:
        target.close()
        draft.close()


def test_a_drafter_swap_that_fails_reports_the_error_and_the_old_drafter_comes_back(
        monkeypatch: pytest.MonkeyPatch):
    params = ContextParams(n_ctx=512, n_threads=1)
    lookup = ModelSpec("starter", starter_path(), params, speculative=SpeculativeConfig("lookup"))
    drafted = ModelSpec("starter", starter_path(), params,
                        speculative=SpeculativeConfig("draft", draft_path=starter_path(), draft_name="small"))
    options = SamplingOptions(temperature=0.0, max_tokens=8)
    with EngineService(name="swap-test") as eng:
        assert eng.complete(COPY_PROMPT, options, model=lookup).wait(60).stats.speculative == "lookup"

        def no_room(*args: object, **kwargs: object) -> LlamaModel:
            raise ModelLoadError("llama.cpp could not load small: not enough memory")

        monkeypatch.setattr(rt, "LlamaModel", no_room)
        with pytest.raises(ModelLoadError, match="could not load small"):
            eng.complete(COPY_PROMPT, options, model=drafted).wait(60)
        monkeypatch.undo()
        assert eng.loaded is not None and eng.loaded.speculative is None  # what is really set up: no drafter

        again = eng.complete(COPY_PROMPT, options, model=lookup).wait(60)
        assert again.stats.speculative == "lookup", "the old drafter must be set up again, not silently skipped"
