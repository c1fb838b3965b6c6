"""Offload planning: how many layers of the target (and of a draft) go to the GPU, and how many CPU threads.

Built on the memory estimate of :mod:`models.fit` (weights + KV cache + compute buffers + runtime overhead). The plan
keeps a safety margin of VRAM free, places the target first, and gives a draft model only what the target leaves:
a draft never pushes target layers off the GPU (it goes where room remains, else on the CPU).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from inference.errors import ModelLoadError
from models.fit import FitClass, FitResult, Machine, ModelShape, estimate_fit
from storage.sizes import MIB, format_bytes
from models.gguf import read_gguf

log = logging.getLogger(__name__)

# VRAM left free for the desktop, other apps and allocator slack: the larger of 512 MiB and 5% of the GPU.
MARGIN_MIN = 512 * MIB
MARGIN_FRACTION = 0.05


@dataclass(frozen=True)
class OffloadPlan:
    """Where each model runs, as llama.cpp parameters, with the estimate behind it."""

    target_gpu_layers: int  # llama.cpp's n_gpu_layers for the target (n_layers + 1 also puts the output layer)
    target_layers: int
    draft_gpu_layers: int
    draft_layers: int
    threads: int
    vram_budget: int | None  # VRAM the plan may use, after the margin; None without a usable GPU
    fit: FitResult

    def summary(self) -> str:
        """One line for ``ember models fit`` and the load log."""
        if self.vram_budget is None:
            where = "CPU only (no GPU offload in this build or no GPU)"
        elif self.target_gpu_layers == 0:
            where = f"CPU only ({format_bytes(self.vram_budget)} of VRAM usable is too little for one layer)"
        else:
            layers = min(self.target_gpu_layers, self.target_layers)
            where = f"{layers} of {self.target_layers} layers on the GPU"
        draft = ""
        if self.draft_layers:
            draft = (f"; draft: {min(self.draft_gpu_layers, self.draft_layers)} of {self.draft_layers} layers "
                     "on the GPU")
        return f"{where}{draft}; {self.threads} threads; {self.fit.summary()}"


def vram_budget(machine: Machine, *, gpu_total: int | None) -> int | None:
    """VRAM a plan may use: free (plus what Ember's loaded model holds) minus the safety margin."""
    if machine.vram_free is None:
        return None
    margin = max(MARGIN_MIN, int(MARGIN_FRACTION * (gpu_total or machine.vram_free)))
    return max(0, machine.vram_free + machine.held_vram - margin)


def plan_offload(target: ModelShape, machine: Machine, *, ctx: int, threads: int, gpu_offload: bool,
                 gpu_total: int | None = None, n_batch: int = 512, draft: ModelShape | None = None,
                 draft_ctx: int | None = None, unified_memory: bool = False) -> OffloadPlan:
    """Plan GPU layers for a target and an optional draft model.

    Args:
        target: the main model's shape.
        machine: free RAM and VRAM (``vram_free`` None: no GPU) and what Ember's loaded model holds.
        ctx: the target's context length.
        threads: CPU threads to use (physical cores).
        gpu_offload: whether this llama.cpp build can offload at all.
        gpu_total: the GPU's total memory (sizes the margin).
        n_batch: prompt batch (sizes compute buffers).
        draft: the draft model's shape, if speculative decoding uses one.
        draft_ctx: the draft's context (default: ``ctx``).
        unified_memory: GPU memory is system RAM (Apple silicon): what goes to the GPU is taken from RAM too.

    Returns:
        The plan; ``fit`` says whether the target fits at all (``FitClass.DOES_NOT_FIT`` when it does not).
    """
    budget = vram_budget(machine, gpu_total=gpu_total) if gpu_offload else None
    planned = Machine(ram_available=machine.ram_available, vram_free=budget, held_ram=machine.held_ram)
    fit = estimate_fit(target, planned, ctx=ctx, n_batch=n_batch)
    if fit.fit is FitClass.GPU:
        target_gpu = target.n_layers + 1  # the output layer too
    elif fit.fit is FitClass.PARTIAL:
        target_gpu = fit.gpu_layers
    else:
        target_gpu = 0
    draft_gpu = 0
    if draft is not None and budget is not None and fit.fit is not FitClass.DOES_NOT_FIT:
        left = budget - fit.vram_needed
        ram_left = planned.ram_available + planned.held_ram - fit.ram_needed
        if unified_memory:
            ram_left -= fit.vram_needed
        draft_fit = estimate_fit(draft, Machine(ram_available=max(0, ram_left), vram_free=max(0, left)),
                                 ctx=draft_ctx or ctx, n_batch=n_batch)
        if draft_fit.fit is FitClass.GPU:
            draft_gpu = draft.n_layers + 1
        elif draft_fit.fit is FitClass.PARTIAL:
            draft_gpu = draft_fit.gpu_layers
    return OffloadPlan(target_gpu_layers=target_gpu, target_layers=target.n_layers, draft_gpu_layers=draft_gpu,
                       draft_layers=draft.n_layers if draft else 0, threads=max(1, threads), vram_budget=budget,
                       fit=fit)




def plan_for_file(path: Path, *, n_ctx: int, n_batch: int, threads: int, held_ram: int = 0) -> OffloadPlan | None:
    """Plan a load of ``path`` against this machine's free RAM and VRAM right now.

    ``held_ram`` is memory Ember's loaded model holds, which the new model would take over. Models loaded already
    (a target, when this plans its draft) have taken their share, so a draft gets only the room that remains.

    Returns:
        The plan, or None when the header does not give what the estimate needs.
    """
    from inference import hardware

    try:
        info = read_gguf(path)
        shape = ModelShape.from_gguf(info, weights=path.stat().st_size)
    except (ValueError, OSError) as exc:
        log.info("no memory estimate for %s: %s", path, exc)
        return None
    mem = hardware.memory()
    backend = hardware.backend_info()
    gpus = hardware.gpus() if backend.gpu_offload else []
    gpu = gpus[0] if gpus else None
    ctx = min(n_ctx, shape.context_length or n_ctx)
    machine = Machine(ram_available=mem.available if mem.available is not None else 1 << 62,
                      vram_free=gpu.free if gpu is not None else None, held_ram=held_ram)
    return plan_offload(shape, machine, ctx=ctx, threads=threads, gpu_offload=gpu is not None,
                        gpu_total=gpu.total if gpu else None, n_batch=n_batch,
                        unified_memory=bool(gpu and gpu.unified))


def preflight(path: Path, *, n_ctx: int, n_batch: int, threads: int, name: str | None = None,
              held_ram: int = 0) -> OffloadPlan | None:
    """:func:`plan_for_file`, refusing a model that cannot fit.

    Raises:
        ModelLoadError: the model needs more memory than is free, with the numbers and what to change.
    """
    plan = plan_for_file(path, n_ctx=n_ctx, n_batch=n_batch, threads=threads, held_ram=held_ram)
    if plan is None:
        return None
    ctx = plan.fit.ctx
    if plan.fit.fit is FitClass.DOES_NOT_FIT:
        need = plan.fit.need
        size = format_bytes
        free = size(plan.fit.ram_available) + (f" of RAM and {size(plan.fit.vram_available)} of VRAM"
                                               if plan.fit.vram_available is not None else " of memory")
        raise ModelLoadError(
            f"{name or path.name} needs about {size(need.total)} at {ctx} tokens of context (weights "
            f"{size(need.weights)}, KV cache {size(need.kv_cache)}, buffers {size(need.compute + need.overhead)}), "
            f"but only {free} is free. Pick a smaller quantisation, lower the context length in settings, or close "
            "other programs; Ember keeps running with the model it had."
        )
    return plan
