"""Continuous batching: every step, one ``llama_decode`` for every running sequence.

Jobs are generators of requests (:mod:`inference.steps`). The scheduler admits waiting jobs into sequence slots
(the desktop's interactive jobs first, and always: one slot is kept for them), then builds each step's batch from
the next token of every generating sequence and at most ``prefill_chunk`` tokens of waiting prompts (chunked
prefill, so a long prompt never stalls the other streams for longer than one chunk; with nothing generating a
prompt goes in ``n_batch`` parts as before). After the decode each sequence samples from its own logits row and
asks for its next step. A sequence whose evaluation fails fails alone; a cancelled one leaves at its next step.

The sequences share one pool of ``n_ctx`` KV cells. A job's :class:`~inference.steps.Acquire` reserves the cells its
prompt and reply may fill (the whole context when they exceed it) and is answered only when the running sequences'
reservations leave room, in order of arrival (interactive jobs first), so a request that fits the context alone
waits for cells instead of being refused, and a running reply is never cut off for another's sake. Cells that idle
sequences still cache (for prefix reuse) are not reserved: they are freed, saved first when long, when a decode
needs them.

Everything here runs on the engine's worker thread, the one thread that computes.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from inference.errors import EngineError
from inference.kv_state import common_prefix
from inference.llama_model import LlamaModel
from inference.steps import Acquire, Drain, Eval, EvalResult, Exclusive, Request, Steps
from storage.errors import EmberError

if TYPE_CHECKING:
    from inference.engine import JobHandle
    from inference.kv_state import StateCache

log = logging.getLogger(__name__)


@dataclass
class SeqJob:
    """A job in the scheduler: its handle, its generator, its slot and what it waits for."""

    handle: "JobHandle"
    steps: Steps
    interactive: bool = False
    slot: int | None = None
    pending: Request | None = None
    done: bool = False
    on_end: Callable[["SeqJob", Any, BaseException | None], None] | None = field(default=None, repr=False)

    reserved: int = 0  # KV cells reserved by its Acquire

    @property
    def state(self) -> str:
        p = self.pending
        if isinstance(p, Acquire):
            return "waiting-for-cells"
        if isinstance(p, Eval):
            return "prefill" if p.chunkable else "generating"
        if isinstance(p, Drain):
            return "waiting-for-idle"
        return "running"


class BatchScheduler:
    """Admits jobs into ``parallel`` sequence slots (plus one kept for interactive jobs) and steps them together.

    Args:
        parallel: API (non-interactive) jobs that run at once; the model's context gets ``parallel + 1``
            sequences.
        prefill_chunk: most prompt tokens one step evaluates while other sequences are generating.
        model: returns the loaded model (or None).
        states: saved KV states, for slot caches evicted when the context runs out of cells.
    """

    def __init__(self, *, parallel: int, prefill_chunk: int, model: Callable[[], LlamaModel | None],
                 states: "StateCache | None" = None) -> None:
        self.parallel = max(1, parallel)
        self.prefill_chunk = max(1, prefill_chunk)
        self._model = model
        self._states = states
        self.waiting: list[SeqJob] = []
        self.active: list[SeqJob] = []
        self._owner: dict[int, SeqJob] = {}  # slot -> job holding it
        self._last_used: dict[int, float] = {}
        self._lock = threading.Lock()  # guards the two lists for snapshot() from other threads
        self.steps = 0
        self.max_batch = 0  # most tokens in one decode
        self.max_generating = 0  # most generating sequences (next tokens, verify batches) in one decode

    @property
    def n_slots(self) -> int:
        """Sequences in the model's context."""
        return self.parallel + 1

    @property
    def busy(self) -> bool:
        """True while jobs wait or run."""
        return bool(self.waiting or self.active)

    def add(self, job: SeqJob) -> None:
        """Queue ``job``: interactive jobs before API jobs, each kind in order of arrival."""
        with self._lock:
            at = len(self.waiting)
            if job.interactive:
                at = next((i for i, j in enumerate(self.waiting) if not j.interactive), at)
            self.waiting.insert(at, job)

    # -- one round ------------------------------------------------------------------------------------------------

    def run_once(self) -> None:
        """Admit what can start, run exclusive work, then one batched step for every sequence that waits for
        evaluation."""
        self._admit()
        evals = [j for j in self.active if isinstance(j.pending, Eval)]
        if evals:
            self._step(evals)

    def _admit(self) -> None:
        self._grant_cells()
        for job in [j for j in self.active if isinstance(j.pending, Exclusive)]:
            self._advance(job, None)
        drains = [j for j in self.active if isinstance(j.pending, Drain)]
        if drains:
            others = [j for j in self.active if not isinstance(j.pending, Drain)]
            if not others:
                self._advance(drains[0], None)
            return  # nothing new starts while a job waits for the engine to be idle
        while self.waiting:
            job = self.waiting[0]
            api = sum(1 for j in self.active if not j.interactive)
            if len(self.active) >= self.n_slots or (not job.interactive and api >= self.parallel):
                return
            with self._lock:
                self.waiting.pop(0)
                self.active.append(job)
            job.handle.started = time.perf_counter()
            self._advance(job, None)
            if any(isinstance(j.pending, Drain) for j in self.active):
                return

    def _advance(self, job: SeqJob, value: Any) -> None:
        """Resume ``job`` with ``value`` until it asks for something that is not answered at once."""
        model = self._model()
        while True:
            if model is not None:
                model.select(job.slot if job.slot is not None else 0)
            try:
                request = job.steps.send(value) if not isinstance(value, BaseException) else job.steps.throw(value)
            except StopIteration as stop:
                self._end(job, stop.value, None)
                return
            except BaseException as exc:  # noqa: BLE001 - the job's failure, reported through its handle
                self._end(job, None, exc)
                return
            if isinstance(request, Acquire):
                if job.slot is None and (self._cells_waiting(job) or not self._fits(request)):
                    job.pending = request  # answered by _grant_cells once the cells are free
                    return
                try:
                    value = self._acquire(job, request)
                except EngineError as exc:
                    value = exc
                model = self._model()
                continue
            job.pending = request
            return

    def _end(self, job: SeqJob, result: Any, error: BaseException | None) -> None:
        job.done = True
        job.pending = None
        with self._lock:
            if job in self.active:
                self.active.remove(job)
        if job.slot is not None:
            self._owner.pop(job.slot, None)
            self._last_used[job.slot] = time.monotonic()
            model = self._model()
            if model is not None:
                model.pinned.discard(job.slot)
        if job.on_end is not None:
            job.on_end(job, result, error)

    # -- cells --------------------------------------------------------------------------------------------------

    def _need(self, request: Acquire) -> int:
        model = self._model()
        return min(request.cells, model.n_ctx) if model is not None else request.cells

    def _fits(self, request: Acquire) -> bool:
        """Whether the cells ``request`` reserves are free beside the running sequences' reservations (a sequence
        alone always fits: one larger than the context shifts it or fails by itself)."""
        model = self._model()
        held = [j.reserved for j in self.active if j.slot is not None]
        return model is None or not held or sum(held) + self._need(request) <= model.n_ctx

    def _cells_waiting(self, job: SeqJob) -> bool:
        """Whether a job ahead of ``job`` waits for cells (they are granted in order, so none is starved)."""
        return any(isinstance(j.pending, Acquire) and _order(j) < _order(job) for j in self.active if j is not job)

    def _grant_cells(self) -> None:
        """Answer the jobs waiting for cells, in order, while their reservations fit."""
        for job in sorted((j for j in self.active if isinstance(j.pending, Acquire)), key=_order):
            request = job.pending
            assert isinstance(request, Acquire)
            if job.handle.cancelled:
                job.pending = None
                self._advance(job, EngineError("The request was cancelled while it waited for room in the context."))
                continue
            if not self._fits(request):
                return
            job.pending = None
            try:
                value: Any = self._acquire(job, request)
            except EngineError as exc:
                value = exc
            self._advance(job, value)

    # -- slots ----------------------------------------------------------------------------------------------------

    def _acquire(self, job: SeqJob, request: Acquire) -> int:
        """The job's slot: its own if it has one, else the free slot whose cache shares the longest prefix with
        the prompt (least recently used among equals; for no prompt, the most recently used)."""
        model = self._model()
        if job.slot is not None:
            return job.slot
        if model is None:
            return 0
        free = [s for s in range(min(self.n_slots, model.n_seq)) if s not in self._owner]
        if not free:
            raise EngineError("Every sequence slot of the engine is in use; try again shortly.")
        if request.prompt is None:
            slot = max(free, key=lambda s: self._last_used.get(s, 0.0))
        else:
            prompt = request.prompt
            slot = max(free, key=lambda s: (common_prefix(model.cached(s), prompt),
                                            -self._last_used.get(s, 0.0)))
        job.slot = slot
        job.reserved = self._need(request)
        self._owner[slot] = job
        model.pinned.add(slot)
        model.select(slot)
        return slot

    @property
    def parking(self) -> int:
        """Parking sequence ids a model loaded for this scheduler gets (one per slot; none without saved
        states): see :meth:`inference.llama_model.LlamaModel.flush_parked`."""
        return self.n_slots if self._states is not None else 0

    @property
    def parked(self) -> bool:
        """Whether the model holds a conversation set aside (saved by :meth:`flush_parked` when idle)."""
        model = self._model()
        return model is not None and model.parked

    def flush_parked(self, *, everything: bool = False) -> bool:
        """While idle, save one conversation its model set aside; False when there is none (or work waits).
        ``everything``: save them all now, busy or not (the model is about to be freed)."""
        model = self._model()
        if model is None or (self.busy and not everything):
            return False
        if not everything:
            return model.flush_parked(self._states)
        while model.flush_parked(self._states):
            pass
        return True

    def _evict_idle(self, model: LlamaModel) -> bool:
        """Free the cells of idle slots' caches, least recently used first (saving long ones); False if none."""
        idle = sorted((s for s in range(model.n_seq) if s not in self._owner and model.cached(s)),
                      key=lambda s: self._last_used.get(s, 0.0))
        for s in idle:
            model.select(s)
            if self._states is not None and len(model.tokens) >= self._states.min_tokens:
                self._states.put(model.model_key, model.tokens, model.save_state())
            model.clear()
        return bool(idle)

    # -- the batched step -----------------------------------------------------------------------------------------

    def _step(self, evals: list[SeqJob]) -> None:
        model = self._model()
        if model is None:
            for job in evals:
                self._advance(job, EngineError("No model is loaded. Choose a model first."))
            return
        order = sorted(evals, key=_order)
        budget = model.n_batch
        plan: list[tuple[SeqJob, list[int], list[bool]]] = []
        for job in order:
            req = job.pending
            assert isinstance(req, Eval)
            if not req.chunkable and len(req.tokens) <= budget:
                plan.append((job, list(req.tokens), req.flags()))
                budget -= len(req.tokens)
        chunk = min(budget, self.prefill_chunk if plan else model.n_batch)
        skipped: list[SeqJob] = []
        for job in order:
            req = job.pending
            assert isinstance(req, Eval)
            if not req.chunkable:
                continue
            if job.handle.cancelled:
                skipped.append(job)  # answered with nothing evaluated: its prefill loop sees the flag and stops
                continue
            take = min(len(req.tokens), chunk)
            if take <= 0:
                continue
            whole = take == len(req.tokens)
            plan.append((job, list(req.tokens[:take]), [whole and i == take - 1 for i in range(take)]))
            chunk -= take
        for job in skipped:
            job.pending = None
            self._advance(job, EvalResult(0))
        if not plan:
            return
        self.steps += 1
        self.max_batch = max(self.max_batch, sum(len(t) for _, t, _ in plan))
        self.max_generating = max(self.max_generating, sum(1 for job, _, _ in plan
                                                           if isinstance(job.pending, Eval) and not job.pending.chunkable))
        results = self._decode(model, plan)
        for job, outcome in results:
            job.pending = None
            self._advance(job, outcome)

    def _decode(self, model: LlamaModel, plan: list[tuple[SeqJob, list[int], list[bool]]]
                ) -> list[tuple[SeqJob, EvalResult | BaseException]]:
        """Evaluate the plan in one decode; on failure free idle caches and retry, then evaluate the sequences
        one by one so only those that cannot be evaluated fail."""
        items = [(job.slot if job.slot is not None else 0, tokens, flags) for job, tokens, flags in plan]
        try:
            model.decode_batch(items)
        except EngineError:
            if not self._evict_idle(model):
                return self._decode_each(model, plan)
            try:
                model.decode_batch(items)
            except EngineError:
                return self._decode_each(model, plan)
        out: list[tuple[SeqJob, EvalResult | BaseException]] = []
        at = 0
        for job, tokens, flags in plan:
            out.append((job, EvalResult(len(tokens), tuple(at + i for i, f in enumerate(flags) if f))))
            at += len(tokens)
        return out

    def _decode_each(self, model: LlamaModel, plan: list[tuple[SeqJob, list[int], list[bool]]]
                     ) -> list[tuple[SeqJob, EvalResult | BaseException]]:
        # Each sequence alone: its logits must be read before the next decode, so each is resumed right away.
        for job, tokens, flags in plan:
            slot = job.slot if job.slot is not None else 0
            try:
                model.decode_batch([(slot, tokens, flags)])
                outcome: EvalResult | BaseException = EvalResult(len(tokens),
                                                                 tuple(i for i, f in enumerate(flags) if f))
            except EmberError as exc:
                outcome = exc
            job.pending = None
            self._advance(job, outcome)
        return []

    # -- for /health ----------------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Running and waiting jobs, for ``/health`` and ``ember doctor``."""
        with self._lock:
            active, waiting = list(self.active), list(self.waiting)
        return {"parallel": self.parallel, "slots": self.n_slots, "prefill_chunk": self.prefill_chunk,
                "running": [{"id": j.handle.id, "kind": j.handle.kind, "slot": j.slot, "state": j.state,
                             "interactive": j.interactive} for j in active],
                "waiting": [{"id": j.handle.id, "kind": j.handle.kind, "interactive": j.interactive}
                            for j in waiting]}


def _order(job: SeqJob) -> tuple[bool, int]:
    """Service order: interactive jobs first, each kind in order of arrival."""
    return (not job.interactive, job.handle.id)
