"""The evaluation path forced through the environment (EMBER_UBATCH, EMBER_THREADS), and the context it makes."""

import llama_cpp
import pytest

from inference.errors import EngineError
from inference.llama_model import ContextParams, ForcedEvalPath, LlamaModel, forced_eval_path
from tests.helpers import starter_path


def test_nothing_is_forced_by_default():
    assert forced_eval_path({}) == ForcedEvalPath(None, None)
    assert forced_eval_path({"EMBER_UBATCH": " ", "EMBER_THREADS": ""}) == ForcedEvalPath(None, None)


def test_both_variables_are_read():
    assert forced_eval_path({"EMBER_UBATCH": "1", "EMBER_THREADS": "3"}) == ForcedEvalPath(1, 3)


@pytest.mark.parametrize("value", ["0", "-2", "one", "1.5"])
def test_a_bad_value_is_a_clear_error(value):
    with pytest.raises(EngineError, match=f"EMBER_THREADS='{value}' is not a positive integer"):
        forced_eval_path({"EMBER_THREADS": value})


@pytest.mark.integration  # loads the real model
def test_a_forced_path_reaches_the_context(monkeypatch):
    monkeypatch.setenv("EMBER_UBATCH", "1")
    monkeypatch.setenv("EMBER_THREADS", "1")
    model = LlamaModel(starter_path(), ContextParams(n_ctx=256, n_batch=64, n_threads=2))
    try:
        assert llama_cpp.llama_n_ubatch(model.ctx) == 1 and llama_cpp.llama_n_batch(model.ctx) == 64
        assert model.n_threads == 1 and llama_cpp.llama_n_threads(model.ctx) == 1
        model.ingest_prompt(model.tokenize("One, two, three,", add_special=True))  # a batch of ubatches of 1
        assert model.next_logits() is not None
    finally:
        model.close()
