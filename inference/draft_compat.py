"""Can a model draft for another? llama.cpp's rule, with a message that names the mismatch.

The rule (llama.cpp ``common_speculative_are_compatible``): same vocabulary type; same BOS and EOS ids (and the
same add-BOS/add-EOS behaviour); vocabulary sizes within 128 of each other; identical token text for every id from
5 on within the shared range. Only the vocabulary is read (``vocab_only``), so checking a library is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import llama_cpp

from inference import llama_log
from storage.errors import EmberError

MAX_VOCAB_SIZE_DIFFERENCE = 128
CHECK_START_TOKEN_ID = 5
_VOCAB_TYPES = {0: "none", 1: "SentencePiece (SPM)", 2: "BPE", 3: "WordPiece", 4: "Unigram (T5)", 5: "RWKV",
                6: "PLaMo-2"}


class DraftIncompatibleError(EmberError, ValueError):
    """The draft model's vocabulary does not match the target's, so it cannot draft for it."""


@dataclass(frozen=True)
class VocabInfo:
    """What the compatibility rule looks at."""

    name: str
    vocab_type: int
    n_vocab: int
    bos: int
    eos: int
    add_bos: bool
    add_eos: bool
    texts: tuple[str, ...]  # token text by id


def read_vocab(path: Path | str, *, name: str | None = None) -> VocabInfo:
    """Load only the vocabulary of a GGUF file.

    Raises:
        DraftIncompatibleError: llama.cpp cannot read the file's vocabulary.
    """
    llama_log.install()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        raise DraftIncompatibleError(f"llama.cpp could not read the vocabulary of {Path(path).name}.")
    try:
        return vocab_of(model, name=name or Path(path).stem)
    finally:
        llama_cpp.llama_model_free(model)


def vocab_of(model: llama_cpp.llama_model_p, *, name: str) -> VocabInfo:
    """The vocabulary description of a loaded llama.cpp model."""
    vocab = llama_cpp.llama_model_get_vocab(model)
    n = llama_cpp.llama_vocab_n_tokens(vocab)
    texts = []
    for i in range(n):
        raw = llama_cpp.llama_vocab_get_text(vocab, i)
        texts.append(raw.decode("utf-8", errors="replace") if raw else "")
    return VocabInfo(name=name, vocab_type=int(llama_cpp.llama_vocab_type(vocab)), n_vocab=n,
                     bos=int(llama_cpp.llama_vocab_bos(vocab)), eos=int(llama_cpp.llama_vocab_eos(vocab)),
                     add_bos=bool(llama_cpp.llama_vocab_get_add_bos(vocab)),
                     add_eos=bool(llama_cpp.llama_vocab_get_add_eos(vocab)), texts=tuple(texts))


def incompatibility(target: VocabInfo, draft: VocabInfo) -> str | None:
    """Why ``draft`` cannot draft for ``target`` (one sentence naming the mismatch), or None when it can."""
    pair = f"{draft.name} cannot draft for {target.name}"
    if target.vocab_type != draft.vocab_type:
        return (f"{pair}: vocabulary type differs ({_type(draft.vocab_type)} vs {_type(target.vocab_type)}).")
    if target.add_bos != draft.add_bos or target.bos != draft.bos:
        return (f"{pair}: beginning-of-text token differs (draft BOS id {draft.bos}, add_bos={draft.add_bos}; "
                f"target BOS id {target.bos}, add_bos={target.add_bos}).")
    if target.add_eos != draft.add_eos or target.eos != draft.eos:
        return (f"{pair}: end-of-text token differs (draft EOS id {draft.eos}, target EOS id {target.eos}).")
    diff = abs(target.n_vocab - draft.n_vocab)
    if diff > MAX_VOCAB_SIZE_DIFFERENCE:
        return (f"{pair}: vocabulary sizes differ by {diff} tokens ({draft.n_vocab} vs {target.n_vocab}; at most "
                f"{MAX_VOCAB_SIZE_DIFFERENCE} allowed).")
    for i in range(CHECK_START_TOKEN_ID, min(target.n_vocab, draft.n_vocab)):
        if target.texts[i] != draft.texts[i]:
            return (f"{pair}: token {i} differs ({draft.texts[i]!r} in the draft, {target.texts[i]!r} in the "
                    "target).")
    return None


def check_compatible(target: VocabInfo, draft: VocabInfo) -> None:
    """Refuse a draft whose vocabulary does not match the target's.

    Raises:
        DraftIncompatibleError: with the mismatch and what to do.
    """
    reason = incompatibility(target, draft)
    if reason is not None:
        raise DraftIncompatibleError(f"{reason} A draft model must use the same tokenizer as the target, "
                                     "usually a smaller model of the same family.")


def compatible_drafts(target_path: Path | str, candidates: Iterable[tuple[str, Path]], *,
                      smaller_only: bool = True) -> list[str]:
    """Names of the candidate models that can draft for the target.

    Args:
        target_path: the target's GGUF file.
        candidates: ``(name, path)`` of each library model.
        smaller_only: leave out files at least as large as the target (they would not draft faster).
    """
    target_path = Path(target_path)
    target = read_vocab(target_path)
    target_size = target_path.stat().st_size
    names = []
    for name, path in candidates:
        path = Path(path)
        if path.resolve() == target_path.resolve() or not path.is_file():
            continue
        if smaller_only and path.stat().st_size >= target_size:
            continue
        try:
            draft = read_vocab(path, name=name)
        except DraftIncompatibleError:
            continue
        if incompatibility(target, draft) is None:
            names.append(name)
    return names


def _type(code: int) -> str:
    return _VOCAB_TYPES.get(code, f"type {code}")
