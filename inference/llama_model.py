"""One llama.cpp model with its context, on the low-level API.

The object is owned by the engine's worker thread: nothing here is thread-safe and nothing here knows about jobs.
The context holds several sequences (llama.cpp's multi-sequence KV cache, one unified pool of ``n_ctx`` cells). For
each it keeps the list of tokens whose KV entries are cached, so a new prompt that shares a prefix with what is
cached (in its own sequence or another one) only evaluates the rest.

Single-sequence methods (:meth:`ingest_prompt`, :meth:`decode`, :meth:`truncate`, :attr:`tokens`, ...) work on the
*selected* sequence (:meth:`select`, sequence 0 by default), so the decode loops need not know which sequence they
run in; :meth:`decode_batch` evaluates tokens of several sequences in one ``llama_decode``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import llama_cpp
import numpy as np

from inference import llama_log
from inference.errors import EngineError, LoadCancelled, ModelLoadError
from inference.hardware import physical_cores
from inference.kv_state import StateCache, common_prefix
from inference.thread_control import ThreadController

log = logging.getLogger(__name__)

ShouldStop = Callable[[], bool]

# Tokens that must match before cached text after a gap is shifted back and reused.
SHIFT_MATCH = 16


@dataclass(frozen=True)
class ContextParams:
    """How a model is loaded: context size, batch, threads and GPU offload."""

    n_ctx: int = 4096
    n_batch: int = 512
    n_threads: int | None = None
    adapt_threads: bool = True  # fewer threads while other programs take cores (inference/thread_control.py)
    n_gpu_layers: int = -1
    flash_attn: bool | None = None  # None: llama.cpp decides
    n_seq: int = 1  # sequences the context holds at once (the engine's slots); they share the n_ctx cells
    # more sequence ids that hold a conversation set aside when its slot takes another prompt, until the engine is
    # idle and saves it (see LlamaModel.flush_parked); 0: saved at once
    n_park: int = 0


def put_tokens(batch: llama_cpp.llama_batch, at: int, tokens: Sequence[int], *, seq: int, pos0: int,
               logits: Sequence[bool]) -> int:
    """Write ``tokens`` of sequence ``seq`` (positions from ``pos0``, a logits flag each) into ``batch`` from index
    ``at``; return the index after them. ``batch.n_tokens`` is the caller's to set."""
    for j, tok in enumerate(tokens):
        batch.token[at] = tok
        batch.pos[at] = pos0 + j
        batch.n_seq_id[at] = 1
        batch.seq_id[at][0] = seq
        batch.logits[at] = bool(logits[j])
        at += 1
    return at


# A prompt copies another sequence's cached prefix (instead of evaluating it) when that is this many tokens longer
# than what its own sequence already holds.
DONOR_MIN = 16


def flash_attn_type(setting: bool | None) -> int:
    """llama.cpp's flash-attention mode for Ember's setting; None (auto) is off on CPU-only builds.

    Measured on the starter model (2 cores, ``ember bench decode [--multiturn] --flash-attn on|off``): with flash
    attention the time to first token grows from 41 to 77 ms over a 20-turn chat, without it 41 to 46 ms, while
    decoding is about 10% faster with it (112 vs 101 tok/s).
    On GPU builds llama.cpp's own automatic choice is kept.
    """
    if setting is None:
        if not llama_cpp.llama_supports_gpu_offload():
            return llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        return llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO
    return llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if setting else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED


@dataclass(frozen=True)
class ForcedEvalPath:
    """A micro-batch size and thread count forced on every context, or None where nothing is forced."""

    ubatch: int | None = None
    threads: int | None = None


EVAL_PATH_VARS = ("EMBER_UBATCH", "EMBER_THREADS")


def forced_eval_path(environ: Mapping[str, str] | None = None) -> ForcedEvalPath:
    """The evaluation path forced through ``EMBER_UBATCH`` and ``EMBER_THREADS`` (positive integers).

    llama.cpp picks kernels by CPU features, batch size and threads, so greedy text can flip between machines
    wherever two tokens are nearly tied. These variables put every context of this process (and of ``ember``
    subprocesses, which inherit them) on another path with other numerics: CI runs the model tests a second time
    with ``EMBER_UBATCH=1 EMBER_THREADS=1``, which evaluates prompts one token at a time, as another CPU would
    round differently. A diagnostic knob, not a setting: ``ember doctor`` shows it when it is in force.

    Raises:
        EngineError: a variable is set but is not a positive integer.
    """
    env = os.environ if environ is None else environ
    values: list[int | None] = []
    for name in EVAL_PATH_VARS:
        raw = env.get(name, "").strip()
        if not raw:
            values.append(None)
            continue
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise EngineError(f"{name}={raw!r} is not a positive integer: unset it or give a number such as 1.")
        values.append(value)
    return ForcedEvalPath(*values)


def cpu_has_amx(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU reports Intel AMX (Linux; elsewhere False). llama.cpp's AMX weight buffers crash the
    vendored build on such CPUs, so models load without extra buffer types there."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            return any(line.startswith("flags") and "amx_int8" in line.split() for line in f)
    except OSError:
        return False


def build_uses_amx() -> bool:
    """True when this llama.cpp was compiled with AMX kernels and the CPU has AMX: then models load without extra
    buffer types (AMX, and with it weight repacking), since those kernels crash. ``make install`` compiles
    llama.cpp without AMX (packaging/install-llama.sh), which keeps repacking; this guards other builds."""
    return cpu_has_amx() and b"AMX_INT8 = 1" in llama_cpp.llama_print_system_info()


class LlamaModel:
    """A loaded GGUF model and one context over it.

    Args:
        path: the GGUF file.
        params: context size, batch, threads, GPU layers.
        progress: called with the load fraction in [0, 1]; return False to cancel the load.

    Raises:
        LoadCancelled: ``progress`` returned False.
        ModelLoadError: llama.cpp could not load the model or create its context.
    """

    def __init__(self, path: Path | str, params: ContextParams, *,
                 progress: Callable[[float], bool] | None = None) -> None:
        llama_log.install()
        self.path = Path(path)
        self.params = params
        self._model = None
        self._ctx = None
        self._batch = None
        self._stop: ShouldStop | None = None
        cancelled = False

        def on_progress(fraction: float, _user: ctypes.c_void_p) -> bool:
            nonlocal cancelled
            try:
                keep_going = progress(float(fraction)) if progress else True
            except Exception:  # a bug in the callback must not crash inside C
                log.exception("model load progress callback failed")
                keep_going = False
            cancelled = not keep_going
            return keep_going

        self._progress_cb = llama_cpp.llama_progress_callback(on_progress)
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = params.n_gpu_layers
        mparams.progress_callback = self._progress_cb
        if build_uses_amx():  # its AMX matmul segfaults on the first decode (Xeon, Q4_1 starter)
            mparams.use_extra_bufts = False
        llama_log.take_recent_errors()
        self._model = llama_cpp.llama_model_load_from_file(str(self.path).encode(), mparams)
        if not self._model:
            if cancelled:
                raise LoadCancelled(f"Loading {self.path.name} was cancelled.")
            raise ModelLoadError(_load_failure(f"llama.cpp could not load {self.path.name}",
                                               "Check that the file is a complete GGUF model of an architecture "
                                               "this llama.cpp supports, and that there is enough free memory."))
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self.n_ctx_train = llama_cpp.llama_model_n_ctx_train(self._model)

        cparams = llama_cpp.llama_context_default_params()
        n_ctx = params.n_ctx if self.n_ctx_train <= 0 else min(params.n_ctx, self.n_ctx_train)
        cparams.n_ctx = n_ctx
        forced = forced_eval_path()
        cparams.n_batch = params.n_batch
        cparams.n_ubatch = min(forced.ubatch or params.n_batch, params.n_batch)
        threads = forced.threads or params.n_threads or physical_cores()
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.no_perf = True
        cparams.flash_attn_type = flash_attn_type(params.flash_attn)
        cparams.n_seq_max = max(1, params.n_seq) + max(0, params.n_park)
        cparams.kv_unified = True  # every sequence may use the whole context, as llama-server --kv-unified
        self._ctx = llama_cpp.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            self.close()
            raise ModelLoadError(_load_failure(
                f"llama.cpp could not create a {n_ctx}-token context for {self.path.name}",
                "There is probably not enough memory: lower the context length or the GPU layers in settings."))
        self.n_ctx = llama_cpp.llama_n_ctx(self._ctx)
        self.n_batch = params.n_batch
        self.n_threads = threads
        # A forced path (EMBER_THREADS) stays fixed; with every layer on a GPU the CPU threads hardly matter.
        self.thread_control = (ThreadController(threads) if params.adapt_threads and forced.threads is None
                               and threads > 1 else None)
        self._threads_now = threads
        self._mem = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._abort_cb = llama_cpp.ggml_abort_callback(self._should_abort)
        self._pieces: dict[int, bytes] = {}
        self.n_seq = max(1, params.n_seq) + max(0, params.n_park)  # the parking ids come last
        self._park = range(max(1, params.n_seq), self.n_seq)
        self._cache: list[list[int]] = [[] for _ in range(self.n_seq)]  # per sequence: tokens in the KV cache
        self._seq = 0  # the selected sequence
        self.pinned: set[int] = set()  # sequences being generated: never shifted under (see shift_out)
        # (seq, len(tokens), row) when llama.cpp's logits row ``row`` (a batch index; -1: the last) is the
        # next-token distribution after all of that sequence's tokens, else None
        self._logits_at: tuple[int, int, int] | None = None
        # (seq, the tokens it held, the model's last hidden state after them): see ingest_prompt(hidden=True)
        self._hidden: tuple[int, list[int], np.ndarray] | None = None
        self.n_embd = llama_cpp.llama_model_n_embd(self._model)
        self.hidden_ms = 0.0  # how long the last hidden-state read took (the token evaluated on its own)
        self.memory = self._memory_report()
        self.bos_id = llama_cpp.llama_vocab_bos(self._vocab)
        self.eos_id = llama_cpp.llama_vocab_eos(self._vocab)
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))

    def thread_plan(self) -> dict[str, int | bool]:
        """The threads this context uses now and how they are chosen (``/health``, ``ember ps``)."""
        control = self.thread_control
        if control is None:
            return {"in_use": self._threads_now, "max": self.n_threads, "adaptive": False}
        return {"in_use": self._threads_now, "adaptive": True, "switches": control.switches, **control.plan()}

    def _memory_report(self) -> dict[str, int | str]:
        """What this model holds where: its layers and how many run on the GPU, its weights' and KV cache's
        bytes (the KV cache as llama.cpp sizes it: n_ctx cells of K and V per layer, f16)."""
        layers = llama_cpp.llama_model_n_layer(self._model)
        heads = max(1, llama_cpp.llama_model_n_head(self._model))
        kv_dim = llama_cpp.llama_model_n_embd(self._model) // heads * llama_cpp.llama_model_n_head_kv(self._model)
        gpu = 0
        if llama_cpp.llama_supports_gpu_offload():
            gpu = layers if self.params.n_gpu_layers < 0 else min(self.params.n_gpu_layers, layers)
        return {"path": str(self.path), "layers": layers, "gpu_layers": gpu, "n_ctx": self.n_ctx,
                "sequences": self.n_seq - len(self._park), "weights_bytes": self.path.stat().st_size,
                "kv_bytes": 2 * self.n_ctx * layers * kv_dim * 2}

    # -- lifetime ------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Free the context and the model (idempotent)."""
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
        if self._model:
            llama_cpp.llama_model_free(self._model)
            self._model = None

    def __del__(self) -> None:  # pragma: no cover - safety net for leaked objects
        try:
            self.close()
        except Exception:
            pass

    @property
    def ctx(self) -> llama_cpp.llama_context_p:
        """The raw llama.cpp context (for samplers)."""
        return self._ctx

    @property
    def vocab(self) -> llama_cpp.llama_vocab_p:
        return self._vocab

    @property
    def raw_model(self) -> llama_cpp.llama_model_p:
        """The raw llama.cpp model (for extra contexts over the same weights, e.g. embeddings)."""
        return self._model

    # -- metadata and vocabulary ---------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        """A GGUF metadata value as llama.cpp renders it, or None."""
        size = 256
        while True:
            buf = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_model_meta_val_str(self._model, key.encode(), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", errors="replace")
            size = n + 1

    def chat_template(self) -> str | None:
        """The model's own chat template (Jinja), or None when the file has none."""
        raw = llama_cpp.llama_model_chat_template(self._model, None)
        return raw.decode("utf-8", errors="replace") if raw else None

    def token_text(self, token: int) -> str:
        """The vocabulary text of a token (special tokens included), e.g. ``<|im_end|>``."""
        raw = llama_cpp.llama_vocab_get_text(self._vocab, token)
        return raw.decode("utf-8", errors="replace") if raw else ""

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool = True) -> list[int]:
        """Token ids of ``text``; ``add_special`` adds BOS/EOS as the model wants, ``parse_special`` reads
        special-token text such as ``<|im_start|>`` as those tokens."""
        data = text.encode("utf-8")
        capacity = len(data) + 8
        buf = (llama_cpp.llama_token * capacity)()
        n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, capacity, add_special, parse_special)
        if n < 0:
            capacity = -n
            buf = (llama_cpp.llama_token * capacity)()
            n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, capacity, add_special, parse_special)
            if n < 0:
                raise EngineError("The text could not be tokenised.")
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        """The bytes a generated token adds to the text (special tokens render as nothing)."""
        cached = self._pieces.get(token)
        if cached is not None:
            return cached
        size = 64
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, size, 0, False)
        if n < 0:
            size = -n
            buf = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, size, 0, False)
        piece = buf.raw[: max(n, 0)]
        self._pieces[token] = piece
        return piece

    def is_eog(self, token: int) -> bool:
        """True for end-of-generation tokens (EOS, EOT, ...)."""
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    # -- KV cache and evaluation ---------------------------------------------------------------------------------

    @property
    def tokens(self) -> list[int]:
        """The tokens cached in the selected sequence, in order."""
        return self._cache[self._seq]

    @tokens.setter
    def tokens(self, value: list[int]) -> None:
        self._cache[self._seq] = value

    @property
    def seq(self) -> int:
        """The selected sequence."""
        return self._seq

    def select(self, seq: int) -> None:
        """Make ``seq`` the sequence the single-sequence methods work on."""
        if not 0 <= seq < self.n_seq:
            raise ValueError(f"sequence {seq} out of range 0..{self.n_seq - 1}")
        self._seq = seq

    def cached(self, seq: int) -> list[int]:
        """The tokens cached in ``seq`` (do not modify)."""
        return self._cache[seq]

    def truncate(self, n_keep: int) -> None:
        """Drop every cached token from position ``n_keep`` on, in the KV cache and in :attr:`tokens`."""
        if n_keep >= len(self.tokens):
            return
        self._logits_at = None
        if not llama_cpp.llama_memory_seq_rm(self._mem, self._seq, n_keep, -1):
            llama_cpp.llama_memory_seq_rm(self._mem, self._seq, -1, -1)
            n_keep = 0
        del self.tokens[n_keep:]

    def clear(self) -> None:
        """Forget every token cached in the selected sequence."""
        llama_cpp.llama_memory_seq_rm(self._mem, self._seq, -1, -1)
        self.tokens.clear()
        self._logits_at = None
        self._hidden = None

    def clear_all(self) -> None:
        """Forget every cached token of every sequence."""
        llama_cpp.llama_memory_clear(self._mem, True)
        for cache in self._cache:
            cache.clear()
        self._logits_at = None
        self._hidden = None

    def common_prefix(self, tokens: Sequence[int]) -> int:
        """How many leading tokens of ``tokens`` are already cached."""
        return common_prefix(self.tokens, tokens)

    @property
    def model_key(self) -> str:
        """Identifies this model file, context setup and llama.cpp build: saved KV states only restore into an
        identical one (the state format is llama.cpp's own and may change between builds)."""
        st = self.path.stat()
        p = self.params
        return (f"{self.path.resolve()}|{st.st_size}|{st.st_mtime_ns}|ctx={self.n_ctx}|fa={p.flash_attn}"
                f"|llama_cpp={llama_cpp.__version__}")

    def save_state(self) -> bytes:
        """llama.cpp's serialised KV state of the cached sequence."""
        size = llama_cpp.llama_state_seq_get_size(self._ctx, self._seq)
        buf = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(self._ctx, buf, size, self._seq)
        return bytes(buf)[:written]

    def load_state(self, tokens: Sequence[int], data: bytes) -> bool:
        """Replace the cache with a saved state holding ``tokens``; False (cache emptied) if llama.cpp refuses."""
        self.clear()
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        if llama_cpp.llama_state_seq_set_data(self._ctx, buf, len(data), self._seq) == 0:
            self.clear()
            return False
        self.tokens = list(tokens)
        return True

    def shift_out(self, start: int, end: int) -> bool:
        """Remove cached tokens ``[start, end)`` and move the later ones back, keeping their KV entries.

        This is llama.cpp's context shift: the later tokens keep their cache (RoPE positions are adjusted), so
        dropping old turns costs no re-evaluation. Returns False when the model's cache cannot shift.
        """
        if end <= start:
            return True
        if not llama_cpp.llama_memory_can_shift(self._mem):
            return False
        # Cells a prefix copy shares with another sequence move for both: that one gives them up first (when idle).
        for other in range(self.n_seq):
            if other != self._seq and common_prefix(self._cache[other], self.tokens) > start:
                if other in self.pinned:
                    return False
                llama_cpp.llama_memory_seq_rm(self._mem, other, start, -1)
                del self._cache[other][start:]
        if not llama_cpp.llama_memory_seq_rm(self._mem, self._seq, start, end):
            return False
        llama_cpp.llama_memory_seq_add(self._mem, self._seq, end, -1, -(end - start))
        del self.tokens[start:end]
        self._logits_at = None
        return True

    def _reuse_after_gap(self, prompt: Sequence[int], reused: int) -> int:
        """When older tokens were dropped from the prompt (a trimmed history), find where the prompt continues
        further on in the cache and shift that part back instead of evaluating it again. Returns the new
        reused length."""
        probe = list(prompt[reused:reused + SHIFT_MATCH])
        if len(probe) < SHIFT_MATCH or len(self.tokens) - reused <= SHIFT_MATCH:
            return reused
        cached = self.tokens
        for b in range(reused + 1, len(cached) - SHIFT_MATCH + 1):
            if cached[b] == probe[0] and cached[b:b + SHIFT_MATCH] == probe:
                if self.shift_out(reused, b):
                    return self.common_prefix(prompt)
                return reused
        return reused

    def prepare(self, prompt: Sequence[int], *, states: StateCache | None = None) -> tuple[int, list[int]]:
        """Make the selected sequence's cache hold the longest reusable prefix of ``prompt``; return how many
        prompt tokens are reused and the tokens still to evaluate (empty: the logits after the whole prompt are
        still held by llama.cpp).

        Reuse, cheapest first: the sequence's own cached prefix; its cached text further on when older turns were
        dropped (context shift); another sequence's cached prefix when that is longer (a copy of its KV cells,
        e.g. the same system prompt from another client); a saved state from ``states`` that shares a longer
        prefix (a conversation switched back to). A long cached sequence about to be dropped is saved to
        ``states`` first.

        Raises:
            EngineError: the prompt is empty or does not fit the context.
        """
        if not prompt:
            raise EngineError("Nothing to evaluate: the prompt is empty.")
        if len(prompt) >= self.n_ctx:
            raise EngineError(
                f"The prompt is {len(prompt)} tokens, longer than the {self.n_ctx}-token context. Start a new "
                "conversation or raise the context length in settings."
            )
        reused = self.common_prefix(prompt)
        if reused < len(self.tokens):
            reused = self._reuse_after_gap(prompt, reused)
        donor, donated = self._best_donor(prompt)
        if donated >= reused + DONOR_MIN or (donated > reused and donated == len(prompt)):
            self._save_before_drop(states, reused)
            llama_cpp.llama_memory_seq_rm(self._mem, self._seq, -1, -1)
            llama_cpp.llama_memory_seq_cp(self._mem, donor, self._seq, 0, donated)
            self.tokens = list(self._cache[donor][:donated])
            self._logits_at = None
            reused = donated
        if states is not None:
            self._save_before_drop(states, reused)
            saved = states.best(self.model_key, prompt, longer_than=reused)
            if saved is not None:
                if self.load_state(saved[0].tokens, saved[0].data):
                    reused = saved[1]
                elif any(self._cache[s] for s in range(self.n_seq) if s != self._seq):
                    # Other sequences hold cells: a state is restored into free contiguous cells, and there may
                    # be none now. The state is kept for later; the prompt is evaluated (the scheduler frees idle
                    # caches when a decode needs their cells).
                    log.info("no room to restore a saved KV state of %d tokens beside the other sequences; "
                             "evaluating the prompt", len(saved[0].tokens))
                    reused = 0
                else:  # refused by an empty cache: evaluate the whole prompt, and never try that state again
                    log.warning("llama.cpp refused a saved KV state of %d tokens; evaluating the prompt again",
                                len(saved[0].tokens))
                    states.discard(self.model_key, saved[0].tokens)
                    reused = 0
        if reused == len(prompt):
            if len(self.tokens) == reused and self.logits_row() is not None:
                return reused, []  # llama.cpp still holds the logits after the prompt's last token
            reused -= 1  # the last token is evaluated again so its logits are fresh
        self.truncate(reused)
        return reused, list(prompt[reused:])

    def _best_donor(self, prompt: Sequence[int]) -> tuple[int, int]:
        """The other sequence whose cache shares the longest prefix with ``prompt``, and that length."""
        best, best_n = -1, 0
        for other in range(self.n_seq):
            if other != self._seq:
                n = common_prefix(self._cache[other], prompt)
                if n > best_n:
                    best, best_n = other, n
        return best, best_n

    def _save_before_drop(self, states: StateCache | None, keep: int) -> None:
        """The selected sequence is about to drop its tokens from ``keep`` on: keep them when they are worth it.

        Serialising a sequence's KV state costs far more when its cells are interleaved with other sequences'
        (sequences decoded together; 55 ms against 5 ms for the starter's 164 tokens), so when a parking id is free
        the tokens are set aside there instead (llama.cpp only tags the same cells with one more id) and saved by
        :meth:`flush_parked` once the engine is idle; meanwhile the parked copy is a donor like any other."""
        if states is None or len(self.tokens) - keep < states.min_tokens:
            return
        park = next((p for p in self._park if not self._cache[p]), None)
        if park is None:
            states.put(self.model_key, self.tokens, self.save_state())
            return
        llama_cpp.llama_memory_seq_cp(self._mem, self._seq, park, 0, -1)
        self._cache[park] = list(self.tokens)

    @property
    def parked(self) -> bool:
        """Whether a conversation is set aside, waiting for :meth:`flush_parked`."""
        return any(self._cache[p] for p in self._park)

    def flush_parked(self, states: StateCache | None) -> bool:
        """Save one conversation set aside by :meth:`prepare` into ``states`` and free its parking id; False when
        none is parked. The selected sequence stays selected."""
        park = next((p for p in self._park if self._cache[p]), None)
        if park is None:
            return False
        if states is not None:
            selected, self._seq = self._seq, park
            try:
                states.put(self.model_key, self.tokens, self.save_state())
            finally:
                self._seq = selected
        llama_cpp.llama_memory_seq_rm(self._mem, park, -1, -1)  # the logits held for another sequence stay valid
        self._cache[park] = []
        return True

    def ingest_prompt(self, prompt: Sequence[int], *, should_stop: ShouldStop | None = None,
                      states: StateCache | None = None, hidden: bool = False) -> int:
        """Make the selected sequence hold ``prompt`` with logits ready for its last token, reusing what it can
        (see :meth:`prepare`) and evaluating the rest in batches of ``n_batch``.

        With ``hidden`` the model's last hidden state for the prompt's last token is read too (:meth:`last_hidden`):
        that token is evaluated on its own with llama.cpp's embeddings output switched on (an embeddings context
        outputs every token of a batch, so the rest of the prompt goes in without it).

        Returns:
            How many prompt tokens were reused from the cache (not evaluated).

        Raises:
            EngineError: the prompt does not fit the context, or llama.cpp failed.
            InterruptedError: ``should_stop`` became true while the prompt was evaluated.
        """
        reused, rest = self.prepare(prompt, states=states)
        if hidden and not rest and self.last_hidden() is None:
            reused = len(prompt) - 1  # the last token once more, now with its hidden state
            self.truncate(reused)
            rest = [prompt[-1]]
        if not hidden:
            self._ingest(rest, should_stop)
        elif rest:  # (nothing left: the state for exactly these tokens is still held)
            self._ingest(rest[:-1], should_stop, logits_last=False)
            self.read_hidden(rest[-1])
        return reused

    def last_hidden(self) -> np.ndarray | None:
        """The model's last hidden state (after the output norm, ``n_embd`` floats) at the selected sequence's
        last cached token, when :meth:`ingest_prompt` read it for exactly these cached tokens; else None."""
        if self._hidden is None or self._hidden[0] != self._seq or self._hidden[1] != self.tokens:
            return None
        return self._hidden[2]

    def read_hidden(self, token: int) -> None:
        """Evaluate one token with the embeddings output on and keep its hidden state for :meth:`last_hidden`
        (its cost in :attr:`hidden_ms`)."""
        t0 = time.perf_counter()
        vec = self.decode_hidden(token)
        if vec is not None:
            self._hidden = (self._seq, list(self.tokens), vec)
        self.hidden_ms = (time.perf_counter() - t0) * 1000

    def decode_hidden(self, token: int) -> np.ndarray | None:
        """Evaluate one token after the selected sequence's cached ones (as :meth:`decode` does) with llama.cpp's
        embeddings output switched on for it, and return the model's last hidden state there (None for a pooled
        embedding model, which has no per-token state)."""
        if llama_cpp.llama_pooling_type(self._ctx) != llama_cpp.LLAMA_POOLING_TYPE_NONE:
            self.decode([token])
            return None
        llama_cpp.llama_set_embeddings(self._ctx, True)
        try:
            self.decode([token])
            ptr = llama_cpp.llama_get_embeddings_ith(self._ctx, -1)
        finally:
            llama_cpp.llama_set_embeddings(self._ctx, False)
        return np.ctypeslib.as_array(ptr, shape=(self.n_embd,)).copy() if ptr else None

    def _ingest(self, rest: Sequence[int], should_stop: ShouldStop | None, *, logits_last: bool = True) -> None:
        """Evaluate ``rest`` in batches of ``n_batch`` (logits for the very last token), stoppable."""
        self._stop = should_stop
        if should_stop is not None and len(rest) > 1:
            llama_cpp.llama_set_abort_callback(self._ctx, self._abort_cb, None)
        try:
            for start in range(0, len(rest), self.n_batch):
                if should_stop is not None and should_stop():
                    raise InterruptedError("stopped while reading the prompt")
                chunk = rest[start:start + self.n_batch]
                last_chunk = start + self.n_batch >= len(rest)
                self.decode(chunk, logits_last=logits_last and last_chunk)
        finally:
            if should_stop is not None and len(rest) > 1:
                llama_cpp.llama_set_abort_callback(self._ctx, ctypes.cast(None, llama_cpp.ggml_abort_callback),
                                                   None)
            self._stop = None

    def decode(self, tokens: Sequence[int], *, logits_last: bool = True,
               logits: Sequence[bool] | None = None) -> None:
        """Evaluate ``tokens`` (at most ``n_batch``) after the selected sequence's cached ones and append them.

        Args:
            tokens: the tokens to evaluate.
            logits_last: compute logits for the last token only (the usual case).
            logits: instead, a flag per token saying which positions need logits.

        Raises:
            EngineError: the context is full or llama.cpp failed; the cache is left as before the call.
            InterruptedError: the abort callback stopped the evaluation.
        """
        flags = list(logits) if logits is not None else [logits_last and i == len(tokens) - 1
                                                         for i in range(len(tokens))]
        self.decode_batch([(self._seq, tokens, flags)])
        self._logits_at = (self._seq, len(self.tokens), -1) if flags and flags[-1] else None

    def decode_batch(self, items: Sequence[tuple[int, Sequence[int], Sequence[bool]]]) -> None:
        """Evaluate tokens of several sequences in one ``llama_decode``: each item is ``(seq, tokens, flags)``,
        the tokens going after that sequence's cached ones and ``flags`` saying which need logits. Batch index
        ``i`` (for :func:`llama_cpp.llama_get_logits_ith` and samplers) is the i-th token in item order.

        Raises:
            EngineError: the context is full or llama.cpp failed; every cache is left as before the call.
            InterruptedError: the abort callback stopped the evaluation.
        """
        n = sum(len(tokens) for _, tokens, _ in items)
        if n == 0 or n > self.n_batch:
            raise ValueError(f"decode takes 1..{self.n_batch} tokens, got {n}")
        batch = self._batch
        batch.n_tokens = n
        i = 0
        starts = []
        for seq, tokens, flags in items:
            pos0 = len(self._cache[seq])
            if pos0 + len(tokens) > self.n_ctx:
                raise EngineError(f"The context is full ({self.n_ctx} tokens).")
            starts.append(pos0)
            i = put_tokens(batch, i, tokens, seq=seq, pos0=pos0, logits=flags)
        self._logits_at = None  # the logits buffer now belongs to this batch
        control = self.thread_control
        if control is not None:
            threads = control.threads_for(n)
            if threads != self._threads_now:
                llama_cpp.llama_set_n_threads(self._ctx, threads, threads)
                self._threads_now = threads
        t0 = time.perf_counter()
        rc = llama_cpp.llama_decode(self._ctx, batch)
        if control is not None and rc == 0:
            t1 = time.perf_counter()
            control.record(n, self._threads_now, t1 - t0, t1)
        if rc != 0:
            for (seq, _, _), pos0 in zip(items, starts):
                llama_cpp.llama_memory_seq_rm(self._mem, seq, pos0, -1)
            if rc == 2:
                raise InterruptedError("evaluation aborted")
            if rc == 1:
                raise EngineError(f"The context is full ({self.n_ctx} tokens): no room for {n} more tokens.")
            raise EngineError(f"llama.cpp failed to evaluate {n} tokens (code {rc}).")
        for seq, tokens, _ in items:
            self._cache[seq].extend(tokens)

    def logits_row(self) -> int | None:
        """The batch index of llama.cpp's logits row that holds the next-token distribution after every token
        cached in the selected sequence (for samplers), or None when no row does any more."""
        at = self._logits_at
        if at is None or at[:2] != (self._seq, len(self.tokens)):
            return None
        return at[2]

    def next_logits(self, row: int | None = None) -> np.ndarray | None:
        """A copy of the next-token logits after every cached token, or None when llama.cpp no longer holds them
        (keep it to :meth:`restore_next_logits` after a look-ahead that is rolled back). ``row``: the batch index
        they are at, when the caller knows it (a batched step); otherwise :meth:`logits_row`."""
        if row is None:
            row = self.logits_row()
            if row is None:
                return None
        ptr = llama_cpp.llama_get_logits_ith(self._ctx, row)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy() if ptr else None

    def restore_next_logits(self, logits: np.ndarray, row: int = -1) -> None:
        """Put back the next-token logits saved by :meth:`next_logits` into logits row ``row`` of the last decode
        once the cache holds the same tokens again (a look-ahead such as the router's glimpse was truncated away),
        so the next :meth:`prepare` of those tokens evaluates nothing. The row must be one this sequence owns in
        the last decode (in a batched step, the row it was last sampled from) and nothing may decode before it is
        sampled; without a logits row nothing changes."""
        ptr = llama_cpp.llama_get_logits_ith(self._ctx, row)
        if not ptr or len(logits) != self.n_vocab:
            return
        data = np.ascontiguousarray(logits, dtype=np.float32)
        ctypes.memmove(ptr, data.ctypes.data, data.nbytes)
        self._logits_at = (self._seq, len(self.tokens), row)

    def _should_abort(self, _data: ctypes.c_void_p) -> bool:
        stop = self._stop
        try:
            return bool(stop and stop())
        except Exception:  # never raise into C
            log.exception("abort callback failed")
            return True


def _load_failure(what: str, advice: str) -> str:
    details = [line for line in llama_log.take_recent_errors() if line]
    reason = f" (llama.cpp said: {details[-1]})" if details else ""
    return f"{what}{reason}. {advice}"
