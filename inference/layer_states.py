"""Every layer's output at a prompt's last token: a research read-out for choosing what the routing probe reads.

llama.cpp names each transformer layer's output ``l_out-<layer>`` in its compute graph. A second context over the
same weights, with an eval callback (``cb_eval``) that asks for exactly those tensors, copies the last token's
column of each one as the graph runs. With the embeddings output switched on in the same decode, the model's final
hidden state (after the output norm: what :mod:`inference.hidden_probe` reads) comes back too.

The callback is a Python function that llama.cpp calls for every graph node, so this context is slower than the
engine's and is never used to answer: ``python -m app.bench.probe_layers`` reads it to measure how well each
layer's state predicts the small model's errors.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Sequence

import llama_cpp
import numpy as np

from inference.errors import EngineError
from inference.llama_model import LlamaModel, put_tokens

_LAYER_PREFIX = b"l_out-"
_BASE: ctypes.CDLL | None = None


def _ggml_base() -> ctypes.CDLL:
    """llama-cpp-python's own ``libggml-base`` (for a tensor's name and data), loaded once."""
    global _BASE
    if _BASE is None:
        folder = Path(llama_cpp.__file__).parent / "lib"
        names = sorted(folder.glob("libggml-base.*")) or sorted(folder.glob("ggml-base.*"))
        if not names:
            raise EngineError(f"llama-cpp-python's libggml-base was not found in {folder}.")
        lib = ctypes.CDLL(str(names[0]))
        lib.ggml_get_name.restype = ctypes.c_char_p
        lib.ggml_get_name.argtypes = [ctypes.c_void_p]
        lib.ggml_nelements.restype = ctypes.c_int64
        lib.ggml_nelements.argtypes = [ctypes.c_void_p]
        lib.ggml_backend_tensor_get.restype = None
        lib.ggml_backend_tensor_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
        _BASE = lib
    return _BASE


class LayerStates:
    """A context over ``model``'s weights that returns every layer's output at the last token of a prompt.

    Raises:
        EngineError: llama.cpp could not create the context (memory), or its ggml library was not found.
    """

    def __init__(self, model: LlamaModel, *, n_ctx: int = 1024) -> None:
        self._lib = _ggml_base()
        self.n_layer = int(llama_cpp.llama_model_n_layer(model.raw_model))
        self.n_embd = int(model.n_embd)
        self._states: dict[int, np.ndarray] = {}
        self._cb = llama_cpp.ggml_backend_sched_eval_callback(self._on_tensor)
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = cparams.n_batch = cparams.n_ubatch = n_ctx
        cparams.n_seq_max = 1
        cparams.n_threads = cparams.n_threads_batch = model.n_threads
        cparams.embeddings = True
        cparams.pooling_type = llama_cpp.LLAMA_POOLING_TYPE_NONE
        cparams.cb_eval = self._cb
        cparams.no_perf = True
        self._ctx = llama_cpp.llama_init_from_model(model.raw_model, cparams)
        if not self._ctx:
            raise EngineError("llama.cpp could not create a context for reading layer states (not enough memory?).")
        self.n_ctx = n_ctx
        self._batch = llama_cpp.llama_batch_init(n_ctx, 0, 1)

    def _on_tensor(self, tensor: int, ask: bool, _user: int) -> bool:
        """llama.cpp's eval callback: ask for the layer outputs, then copy each one's last column."""
        try:
            name = self._lib.ggml_get_name(tensor) or b""
            if not name.startswith(_LAYER_PREFIX):
                return False
            if ask:
                return True
            cols = int(self._lib.ggml_nelements(tensor)) // self.n_embd
            out = np.empty(self.n_embd, dtype=np.float32)
            self._lib.ggml_backend_tensor_get(tensor, out.ctypes.data, (cols - 1) * self.n_embd * 4,
                                              self.n_embd * 4)
            self._states[int(name[len(_LAYER_PREFIX):])] = out
            return True
        except Exception:  # never raise into C
            return False

    def read(self, tokens: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Evaluate ``tokens`` from an empty cache; return (each layer's output at the last token, shape
        ``(n_layer, n_embd)``; the final hidden state after the output norm, shape ``(n_embd,)``).

        Raises:
            EngineError: the prompt is empty or longer than the context, or llama.cpp failed.
        """
        if not tokens or len(tokens) > self.n_ctx:
            raise EngineError(f"A prompt of {len(tokens)} tokens does not fit this {self.n_ctx}-token context.")
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self._ctx), True)
        b = self._batch
        b.n_tokens = len(tokens)
        put_tokens(b, 0, tokens, seq=0, pos0=0, logits=[False] * (len(tokens) - 1) + [True])
        self._states.clear()
        rc = llama_cpp.llama_decode(self._ctx, b)
        if rc != 0:
            raise EngineError(f"llama.cpp failed to evaluate {len(tokens)} tokens (code {rc}).")
        if sorted(self._states) != list(range(self.n_layer)):
            raise EngineError(f"llama.cpp showed {len(self._states)} of {self.n_layer} layer outputs; this "
                              "architecture does not name them l_out-<layer>.")
        ptr = llama_cpp.llama_get_embeddings_ith(self._ctx, -1)
        if not ptr:
            raise EngineError("llama.cpp returned no hidden state for the last token.")
        final = np.ctypeslib.as_array(ptr, shape=(self.n_embd,)).copy()
        return np.stack([self._states[i] for i in range(self.n_layer)]), final

    def close(self) -> None:
        """Free the context (the model stays loaded)."""
        if self._ctx:
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self._ctx)
            self._ctx = None

    def __enter__(self) -> "LayerStates":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
