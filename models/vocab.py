"""Vocabulary fingerprints, so the library can tell which models can draft for which.

A draft model proposes tokens that the target model checks, so both must share a vocabulary. llama.cpp's rule
(``common_speculative_are_compatible``): same vocabulary type, same BOS/EOS ids, sizes within 128 of each other and
identical token text for ids from 5 on. The fingerprint hashes the vocabulary type, BOS/EOS ids and every token's
text: equal fingerprints mean compatible; :func:`compatible` applies the exact rule to two headers.
"""

from __future__ import annotations

import hashlib
from typing import Any

from models.gguf import GGUFInfo

MAX_VOCAB_SIZE_DIFF = 128
FIRST_CHECKED_TOKEN = 5


def fingerprint(info: GGUFInfo) -> str | None:
    """A 16-hex-digit digest of the vocabulary (needs a header read with ``load_arrays=True``); None if absent."""
    tokens = info.metadata.get("tokenizer.ggml.tokens")
    if not isinstance(tokens, list):
        return None
    h = hashlib.sha256()
    h.update(repr(_ids(info)).encode())
    for tok in tokens:
        h.update(str(tok).encode("utf-8", errors="replace"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def compatible(target: GGUFInfo, draft: GGUFInfo) -> tuple[bool, str]:
    """Whether ``draft`` can draft for ``target`` under llama.cpp's rule (headers read with ``load_arrays``).

    Returns:
        (compatible, reason): the reason names the first rule broken ('' when compatible).
    """
    a, b = target.metadata.get("tokenizer.ggml.tokens"), draft.metadata.get("tokenizer.ggml.tokens")
    if not isinstance(a, list) or not isinstance(b, list):
        return False, "a vocabulary is missing (read the headers with load_arrays=True)"
    if _ids(target) != _ids(draft):
        return False, "vocabulary type or BOS/EOS token ids differ"
    if abs(len(a) - len(b)) > MAX_VOCAB_SIZE_DIFF:
        return False, f"vocabulary sizes differ by more than {MAX_VOCAB_SIZE_DIFF} ({len(a)} vs {len(b)})"
    for i in range(FIRST_CHECKED_TOKEN, min(len(a), len(b))):
        if a[i] != b[i]:
            return False, f"token {i} differs ({a[i]!r} vs {b[i]!r})"
    return True, ""


def _ids(info: GGUFInfo) -> tuple[Any, ...]:
    m = info.metadata
    return (m.get("tokenizer.ggml.model"), m.get("tokenizer.ggml.bos_token_id"), m.get("tokenizer.ggml.eos_token_id"))
