"""Will a model fit this machine? Memory for weights + KV cache + compute buffers against free RAM and VRAM.

The arithmetic, all in bytes (kept simple enough to check by hand, and on the safe side of llama.cpp's own):

- weights   = the GGUF file size(s): llama.cpp maps the file and holds every tensor once, on CPU or GPU.
- kv_cache  = n_layers x ctx x n_head_kv x (key_length + value_length) x 2 (f16 cache)
- compute   = 4 x n_batch x (n_vocab + 4 x n_embd + n_head x ctx)   (f32 logits, activations and one layer's
              attention scores for a batch)
- overhead  = 256 MiB for the runtime (CUDA/Metal context, scratch), on each device used.

Classes: the whole model on the GPU when weights + kv + compute + overhead fit in VRAM; else *partial* offload of
N of M layers, where each layer costs (weights + kv) / M and the GPU keeps compute + overhead for itself, with the
rest in RAM; else CPU only when everything fits in RAM; else it does not fit. Memory held by Ember's currently
loaded model counts as available, since loading another model replaces it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from models.errors import ModelFileError
from models.gguf import ArraySummary, GGUFInfo, read_gguf
from storage.errors import EmberError
from storage.sizes import MIB, format_bytes

if TYPE_CHECKING:
    from models.library import LibraryModel

RUNTIME_OVERHEAD = 256 * MIB
KV_BYTES_PER_VALUE = 2  # f16 cache, llama.cpp's default


class FitClass(str, Enum):
    """Where a model can run."""

    GPU = "fits on GPU"
    PARTIAL = "partial offload"
    CPU = "CPU only"
    DOES_NOT_FIT = "does not fit"


@dataclass(frozen=True)
class ModelShape:
    """The numbers the estimate needs, from a GGUF header (local, or read from the Hub) and the file size."""

    weights: int
    n_layers: int
    n_embd: int
    n_head: int
    n_head_kv: int
    key_length: int
    value_length: int
    n_vocab: int
    context_length: int | None = None
    architecture: str | None = None

    @classmethod
    def from_gguf(cls, info: GGUFInfo, *, weights: int) -> "ModelShape":
        """Read the shape from a GGUF header.

        Args:
            info: the header (metadata is enough; the tensor table is not needed).
            weights: bytes of all files of the model (the size of every shard together).

        Raises:
            ModelFileError: the header lacks the layer count or embedding size.
        """
        n_layers = info.block_count
        n_embd = info.arch_value("embedding_length")
        if not n_layers or not n_embd:
            raise ModelFileError(f"The GGUF header does not give {info.architecture}.block_count and "
                                 "embedding_length, so the memory the model needs cannot be estimated.")
        n_head = _first(info.arch_value("attention.head_count")) or 1
        n_head_kv = _first(info.arch_value("attention.head_count_kv")) or n_head
        head_dim = n_embd // n_head
        tokens = info.metadata.get("tokenizer.ggml.tokens")
        n_vocab = (tokens.length if isinstance(tokens, ArraySummary) else len(tokens) if tokens
                   else info.arch_value("vocab_size") or 32000)
        return cls(weights=weights, n_layers=int(n_layers), n_embd=int(n_embd), n_head=int(n_head),
                   n_head_kv=int(n_head_kv), key_length=int(info.arch_value("attention.key_length") or head_dim),
                   value_length=int(info.arch_value("attention.value_length") or head_dim), n_vocab=int(n_vocab),
                   context_length=info.context_length, architecture=info.architecture)


@dataclass(frozen=True)
class Machine:
    """The memory this machine has free for a model, in bytes.

    ``held_ram``/``held_vram`` are held by Ember's loaded model and become free when another model replaces it.
    """

    ram_available: int
    vram_free: int | None = None
    held_ram: int = 0
    held_vram: int = 0


@dataclass(frozen=True)
class Requirement:
    """Bytes a model needs at one context length."""

    weights: int
    kv_cache: int
    compute: int
    overhead: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute + self.overhead


@dataclass(frozen=True)
class FitResult:
    """The verdict, with the numbers behind it."""

    fit: FitClass
    ctx: int
    need: Requirement
    gpu_layers: int
    total_layers: int
    ram_needed: int
    vram_needed: int
    ram_available: int
    vram_available: int | None

    def summary(self) -> str:
        """One line for people, e.g. ``partial offload: 29 of 32 layers on the GPU (5.4 GiB VRAM, ...)``."""
        size = format_bytes
        need = f"needs {size(self.need.total)} at {self.ctx} tokens of context"
        if self.fit is FitClass.GPU:
            return f"{self.fit.value}: all {self.total_layers} layers ({need}; {size(self.vram_available)} VRAM free)"
        if self.fit is FitClass.PARTIAL:
            return (f"{self.fit.value}: {self.gpu_layers} of {self.total_layers} layers on the GPU "
                    f"({size(self.vram_needed)} VRAM of {size(self.vram_available)} free, {size(self.ram_needed)} RAM "
                    f"of {size(self.ram_available)} free)")
        if self.fit is FitClass.CPU:
            gpu = "no GPU" if self.vram_available is None else f"too little VRAM ({size(self.vram_available)} free)"
            return f"{self.fit.value}: {need}, {size(self.ram_available)} RAM free, {gpu}"
        return (f"{self.fit.value}: {need}; only {size(self.ram_available)} RAM"
                + ("" if self.vram_available is None else f" and {size(self.vram_available)} VRAM")
                + " free. Pick a smaller quantisation or a shorter context.")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        d = asdict(self)
        d["fit"] = self.fit.name.lower()
        d["need"]["total"] = self.need.total
        d["summary"] = self.summary()
        return d


def requirement(shape: ModelShape, *, ctx: int, n_batch: int = 512) -> Requirement:
    """Bytes for weights, KV cache, compute buffers and runtime overhead at context ``ctx``."""
    kv = shape.n_layers * ctx * shape.n_head_kv * (shape.key_length + shape.value_length) * KV_BYTES_PER_VALUE
    compute = 4 * n_batch * (shape.n_vocab + 4 * shape.n_embd + shape.n_head * ctx)
    return Requirement(weights=shape.weights, kv_cache=kv, compute=compute, overhead=RUNTIME_OVERHEAD)


def estimate_fit(shape: ModelShape, machine: Machine, *, ctx: int, n_batch: int = 512) -> FitResult:
    """Classify where a model can run on ``machine`` at context ``ctx``.

    Args:
        shape: the model's size and dimensions.
        machine: free RAM and VRAM (None: no usable GPU), and what Ember's loaded model holds.
        ctx: context length in tokens.
        n_batch: prompt batch size (sizes the compute buffer).

    Returns:
        The class (GPU / partial N of M / CPU / does not fit) with the bytes needed and available.
    """
    need = requirement(shape, ctx=ctx, n_batch=n_batch)
    ram = machine.ram_available + machine.held_ram
    vram = None if machine.vram_free is None else machine.vram_free + machine.held_vram
    m = shape.n_layers

    def result(fit: FitClass, layers: int, ram_needed: int, vram_needed: int) -> FitResult:
        return FitResult(fit=fit, ctx=ctx, need=need, gpu_layers=layers, total_layers=m, ram_needed=ram_needed,
                         vram_needed=vram_needed, ram_available=ram, vram_available=vram)

    if vram is not None:
        if need.total <= vram:
            return result(FitClass.GPU, m, 0, need.total)
        per_layer = (need.weights + need.kv_cache) / m
        budget = vram - need.compute - need.overhead
        layers = min(m, int(budget // per_layer)) if budget > 0 else 0
        if layers >= 1:
            on_gpu = int(layers * per_layer)
            ram_needed = need.weights + need.kv_cache - on_gpu + need.compute + need.overhead
            if ram_needed <= ram:
                return result(FitClass.PARTIAL, layers, ram_needed, on_gpu + need.compute + need.overhead)
    if need.total <= ram:
        return result(FitClass.CPU, 0, need.total, 0)
    return result(FitClass.DOES_NOT_FIT, 0, need.total, 0)


def model_shape(info: GGUFInfo, *, weights: int, name: str) -> ModelShape:
    """The shape of the model ``name`` from its header (:meth:`ModelShape.from_gguf`).

    Raises:
        EmberError: the header lacks what the estimate needs (a known error, said with the model's name).
    """
    try:
        return ModelShape.from_gguf(info, weights=weights)
    except (ModelFileError, TypeError, KeyError) as exc:
        raise EmberError(f"Cannot estimate whether {name} fits: {exc}") from None


def library_fit(model: "LibraryModel", machine: Machine, *, ctx: int, n_batch: int = 512) -> FitResult:
    """Whether an installed library model fits ``machine`` (its header read from disk, its files' size as the
    weights): the estimate of a library row, in the CLI (``ember models fit NAME``) and on the library page.

    Raises:
        EmberError: the file cannot be read or lacks what the estimate needs.
    """
    shape = model_shape(read_gguf(model.path), weights=model.size, name=model.name)
    return estimate_fit(shape, machine, ctx=ctx, n_batch=n_batch)


def _first(value: Any) -> int | None:
    """Per-layer values may be arrays (models whose layers differ): take the largest."""
    if isinstance(value, list):
        return max(value) if value else None
    return value
