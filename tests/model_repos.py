"""Names and contents of the fake Hub repositories the model library tests use."""

from __future__ import annotations

import random

from gguf_synth import gguf_bytes, llama_metadata

TINY = "ember-test/tiny-GGUF"
GATED = "ember-test/gated-GGUF"
TINY_FILE = "tiny.Q4_K_M.gguf"
SPLIT = "tiny.Q8_0.gguf"
GATED_FILE = "gated.Q4_0.gguf"


def model_bytes(seed: int, n: int = 3 << 20, **shape: int) -> bytes:
    """A valid GGUF file of about ``n`` bytes with random (seeded) tensor data."""
    return gguf_bytes(llama_metadata(**shape), data=random.Random(seed).randbytes(n))
