"""Vocabulary fingerprints: a short digest of a model's tokenizer, kept in the library (``models info``).

The fingerprint hashes the vocabulary type, BOS/EOS ids and every token's text, so models with equal fingerprints
share a tokenizer. Whether one model can draft for another is decided by llama.cpp's exact rule, in
``inference.draft_compat``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from models.gguf import GGUFInfo


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


def _ids(info: GGUFInfo) -> tuple[Any, ...]:
    m = info.metadata
    return (m.get("tokenizer.ggml.model"), m.get("tokenizer.ggml.bos_token_id"), m.get("tokenizer.ggml.eos_token_id"))
