"""llama.cpp's draft compatibility rule, with messages that name the mismatch."""

from dataclasses import replace

import pytest

from inference.draft_compat import (DraftIncompatibleError, VocabInfo, check_compatible, compatible_drafts,
                                    incompatibility, read_vocab)
from tests.helpers import starter_path


@pytest.fixture(scope="module")
def starter_vocab() -> VocabInfo:
    return read_vocab(starter_path(), name="starter")


def test_the_starter_vocabulary_is_read_without_loading_weights(starter_vocab):
    assert starter_vocab.n_vocab == 49152 and starter_vocab.vocab_type == 2  # BPE
    assert starter_vocab.texts[1] == "<|im_start|>"


def test_a_model_is_compatible_with_itself(starter_vocab):
    assert incompatibility(starter_vocab, replace(starter_vocab, name="copy")) is None
    check_compatible(starter_vocab, starter_vocab)


def test_vocabulary_type_mismatch_is_named(starter_vocab):
    gemma_like = replace(starter_vocab, name="gemma-3-270m", vocab_type=1)
    msg = incompatibility(starter_vocab, gemma_like)
    assert "gemma-3-270m cannot draft for starter" in msg and "vocabulary type" in msg and "SentencePiece" in msg
    with pytest.raises(DraftIncompatibleError, match="same tokenizer"):
        check_compatible(starter_vocab, gemma_like)


def test_special_token_mismatches_are_named(starter_vocab):
    assert "beginning-of-text" in incompatibility(starter_vocab, replace(starter_vocab, bos=7))
    assert "beginning-of-text" in incompatibility(starter_vocab, replace(starter_vocab, add_bos=True))
    assert "end-of-text" in incompatibility(starter_vocab, replace(starter_vocab, eos=0))


def test_vocabulary_size_tolerance_is_128(starter_vocab):
    texts = starter_vocab.texts
    bigger = replace(starter_vocab, n_vocab=len(texts) + 128, texts=texts + tuple(f"x{i}" for i in range(128)))
    assert incompatibility(starter_vocab, bigger) is None
    much = replace(starter_vocab, n_vocab=len(texts) + 129, texts=texts + tuple(f"x{i}" for i in range(129)))
    assert "differ by 129 tokens" in incompatibility(starter_vocab, much)


def test_token_text_mismatch_names_the_token(starter_vocab):
    texts = list(starter_vocab.texts)
    texts[1000] = "zzz"
    msg = incompatibility(starter_vocab, replace(starter_vocab, texts=tuple(texts)))
    assert "token 1000 differs" in msg and "'zzz'" in msg
    texts = list(starter_vocab.texts)
    texts[3] = "other"  # ids below 5 are not compared (llama.cpp's rule)
    assert incompatibility(starter_vocab, replace(starter_vocab, texts=tuple(texts))) is None


def test_compatible_drafts_lists_smaller_same_vocab_files(tmp_path):
    target = tmp_path / "target.gguf"
    target.write_bytes(starter_path().read_bytes())
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF not really")
    same = starter_path()
    found = compatible_drafts(target, [("same", same), ("broken", broken), ("self", target)], smaller_only=False)
    assert found == ["same"]
    assert compatible_drafts(target, [("same", same)]) == []  # not smaller than the target
