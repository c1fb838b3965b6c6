"""Write small but real GGUF files for tests: any metadata, a vocabulary, and tensors filled with given bytes."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

ALIGN = 32


def _string(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("<Q", len(raw)) + raw


def _value(v: Any) -> tuple[int, bytes]:
    if isinstance(v, bool):
        return 7, struct.pack("<?", v)
    if isinstance(v, int):
        return (4, struct.pack("<I", v)) if 0 <= v < 1 << 32 else (11, struct.pack("<q", v))
    if isinstance(v, float):
        return 6, struct.pack("<f", v)
    if isinstance(v, str):
        return 8, _string(v)
    if isinstance(v, list):
        if v and isinstance(v[0], str):
            return 9, struct.pack("<IQ", 8, len(v)) + b"".join(_string(x) for x in v)
        if v and isinstance(v[0], float):
            return 9, struct.pack("<IQ", 6, len(v)) + struct.pack(f"<{len(v)}f", *v)
        return 9, struct.pack("<IQ", 5, len(v)) + struct.pack(f"<{len(v)}i", *v)
    raise TypeError(type(v))


def llama_metadata(*, n_layers: int = 2, n_embd: int = 64, n_head: int = 4, n_head_kv: int = 2,
                   ctx: int = 2048, vocab: list[str] | None = None, name: str = "tiny") -> dict[str, Any]:
    """Metadata of a llama-architecture model with the given shape."""
    tokens = vocab if vocab is not None else ["<unk>", "<s>", "</s>"] + [f"tok{i}" for i in range(97)]
    return {
        "general.architecture": "llama", "general.name": name, "general.file_type": 15,
        "llama.block_count": n_layers, "llama.embedding_length": n_embd, "llama.context_length": ctx,
        "llama.attention.head_count": n_head, "llama.attention.head_count_kv": n_head_kv,
        "tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}",
    }


def gguf_bytes(metadata: dict[str, Any], *, data: bytes = b"\0" * 1024) -> bytes:
    """A complete GGUF v3 file: ``metadata`` and one F32 tensor holding ``data`` (length a multiple of 4)."""
    assert len(data) % 4 == 0
    head = b"GGUF" + struct.pack("<IQQ", 3, 1, len(metadata))
    for key, value in metadata.items():
        vtype, raw = _value(value)
        head += _string(key) + struct.pack("<I", vtype) + raw
    head += _string("weights") + struct.pack("<I", 1) + struct.pack("<Q", len(data) // 4) + struct.pack("<IQ", 0, 0)
    head += b"\0" * (-len(head) % ALIGN)
    return head + data


def write_gguf(path: Path, metadata: dict[str, Any] | None = None, *, data: bytes = b"\0" * 1024) -> Path:
    """Write :func:`gguf_bytes` to ``path`` and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gguf_bytes(metadata if metadata is not None else llama_metadata(), data=data))
    return path
