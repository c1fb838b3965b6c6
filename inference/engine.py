"""The engine service: one worker thread owns every llama.cpp context and runs every job.

Front ends (the chat window, the local API, the CLI) submit jobs and read events back from a :class:`JobHandle`,
by iterating it or through a callback. Cancelling a job sets a flag that the worker checks before every token.

Generation jobs run at the same time as sequences of one context: the worker's scheduler
(:mod:`inference.scheduler`) puts the next token of every running reply (or the drafted tokens a speculative reply
verifies), and a bounded chunk of waiting prompts, into one ``llama_decode`` per step. The desktop's turns
(``interactive``) go before API jobs and always find a slot. Work that cannot share a batch (embeddings, reading a
hidden state, a model load) runs alone between steps.

The engine holds its models in slots (``chat`` and ``large``, the router's local large tier), each with its own
sequences and scheduler, all stepped by the one worker thread: every llama.cpp computation in Ember runs there.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import queue
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from inference.chat_prompt import fit_chat_prompt, model_template
from inference.errors import EngineError
from inference.events import EngineEvent, Failed, Finished, GenerationStats, LoadProgress, TokenText
from inference.generate import generate_steps
from inference.hardware import batching_defaults, physical_cores
from inference.kv_state import StateCache
from inference.offload import OffloadPlan, preflight
from inference.llama_model import ContextParams, LlamaModel
from inference.logprobs import token_logprob
from inference.sampling import SamplingOptions
from inference.route_signals import Probe, answer_opening, glimpse_steps, probe_steps
from inference.scheduler import BatchScheduler, SeqJob
from inference.spec_runtime import SpeculativeConfig, SpeculativeRuntime
from inference.steps import Acquire, Drain, Exclusive, Steps
from inference.tools import OPEN, ToolReply, ToolRequest, call_grammar, parse_reply, prompt_messages, \
    template_knows_tools
from storage.errors import EmberError

log = logging.getLogger(__name__)

Message = Mapping[str, Any]
# A reply with tools may re-tokenise its text before the call's arguments (a token or two more than it wrote).
TOOL_SLACK = 8
_TOOL_KEYS = ("tool_calls", "tool_call_id", "name")


@dataclass(frozen=True)
class ModelSpec:
    """Which model to load and how: a name for display, the file, and the context parameters."""

    name: str
    path: Path
    params: ContextParams = field(default_factory=ContextParams)
    speculative: SpeculativeConfig | None = None  # draft model or prompt lookup; None: plain decoding


@dataclass(frozen=True)
class ChatResult:
    """A finished reply: its text and figures; for a request with tools, the text split into content and calls
    (``text`` is then the whole reply, calls included, as the model wrote it)."""

    text: str
    stats: GenerationStats
    tools: ToolReply | None = None


@dataclass(frozen=True)
class RoutedSmall:
    """What the small model did in a routed turn: its glimpse or whole probed answer (None: the prompt could not
    be evaluated), the reply when it kept the turn after a glimpse, the messages dropped to fit the context, and
    the text of the answer's first tokens (:func:`~inference.route_signals.answer_opening`, for the cascade's
    agreement samples)."""

    probe: Probe | None
    answer: ChatResult | None
    dropped: int = 0
    opening: str = ""


class JobHandle:
    """A submitted job: iterate it for events, :meth:`cancel` it, or :meth:`wait` for its result."""

    _ids = itertools.count(1)

    def __init__(self, kind: str, on_event: Callable[[EngineEvent], None] | None = None) -> None:
        self.id = next(self._ids)
        self.kind = kind
        self.submitted = time.perf_counter()
        self._events: queue.SimpleQueue[EngineEvent] = queue.SimpleQueue()
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._on_event = on_event
        self._final: EngineEvent | None = None
        self.started: float | None = None  # perf_counter() when the worker took the job

    # -- for callers ---------------------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Ask the job to stop; a generation ends at the next token, a load at the next progress step."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def __iter__(self) -> Iterator[EngineEvent]:
        """Events as they come, ending with the :class:`Finished` or :class:`Failed` event."""
        while True:
            event = self._events.get()
            yield event
            if isinstance(event, (Finished, Failed)):
                return

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the job ends and return its result.

        Raises:
            TimeoutError: the job did not end within ``timeout`` seconds.
            EmberError: the job failed with a known error (any other exception for a bug).
        """
        if not self._done.wait(timeout):
            raise TimeoutError(f"engine job {self.id} ({self.kind}) did not finish in {timeout} s")
        final = self._final
        if isinstance(final, Failed):
            raise final.error
        assert isinstance(final, Finished)
        return final.result

    # -- for the worker ------------------------------------------------------------------------------------------

    def emit(self, event: EngineEvent) -> None:
        # The callback runs first, so whoever reads the event from the queue sees its effects (a stored reply).
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                log.exception("engine event callback failed")
        if isinstance(event, (Finished, Failed)):
            self._final = event
        self._events.put(event)
        if isinstance(event, (Finished, Failed)):
            self._done.set()


# The engine's model slots: the chat model (with its draft, if any) and the router's local large tier.
SLOTS = ("chat", "large")


class _Slot:
    """One loaded model of the engine: its spec, its drafter, the plan it was loaded with, and the scheduler of
    its sequences (every slot's scheduler is stepped by the one worker thread)."""

    def __init__(self, name: str, *, parallel: int, prefill_chunk: int, states: StateCache | None) -> None:
        self.name = name
        self.model: LlamaModel | None = None
        self.spec: ModelSpec | None = None
        self.speculative = SpeculativeRuntime()  # the drafter of the loaded model, if its spec asks for one
        self.load_plan: OffloadPlan | None = None
        self.keep_alive: float | None = None  # seconds idle before its model is freed (None: kept)
        self.last_used = time.monotonic()
        self.scheduler = BatchScheduler(parallel=parallel, prefill_chunk=prefill_chunk, model=lambda: self.model,
                                        states=states)

    def free(self) -> None:
        self.speculative.close()
        if self.model is not None:
            self.scheduler.flush_parked(everything=True)  # conversations set aside are saved, not lost with it
            self.model.close()
        self.model = self.spec = None


class EngineService:
    """Owns every loaded model on one worker thread; every operation is a job, generation jobs run batched.

    Models live in named slots (:data:`SLOTS`): ``chat``, the model replies come from, and ``large``, the router's
    local large tier, so a routed turn escalates without unloading the small model or its KV cache. Each slot has
    its own sequences and scheduler; the worker steps them in turn, so every llama.cpp computation runs on the one
    thread.

    Args:
        name: thread name (for logs and debuggers).
        states: saved KV states of earlier conversations (None: no saving).
        parallel: generation jobs of API clients that run at once (one more slot is kept for interactive jobs);
            None: :func:`~inference.hardware.batching_defaults`.
        prefill_chunk: most prompt tokens a step evaluates while other sequences are generating (None: as
            ``parallel``).
    """

    def __init__(self, *, name: str = "ember-engine", states: StateCache | None = None, parallel: int | None = None,
                 prefill_chunk: int | None = None) -> None:
        default_parallel, default_chunk = batching_defaults()
        self._states = states
        self._queue: queue.Queue[tuple[str, SeqJob | None] | None] = queue.Queue()  # None: stop
        self._thread = threading.Thread(target=self._worker, name=name, daemon=True)
        self._slots = {n: _Slot(n, parallel=parallel or default_parallel, prefill_chunk=prefill_chunk or default_chunk,
                                states=states) for n in SLOTS}
        self._lock = threading.Lock()
        self._started = False
        self._stopped = False

    @property
    def load_plan(self) -> OffloadPlan | None:
        """The offload plan of the chat model's last load (GPU layers, threads, memory)."""
        return self._slots["chat"].load_plan

    def _slot(self, name: str) -> _Slot:
        try:
            return self._slots[name]
        except KeyError:
            raise EngineError(f"Unknown model slot {name!r}: use one of {', '.join(SLOTS)}.") from None

    # -- lifetime ------------------------------------------------------------------------------------------------

    def start(self) -> "EngineService":
        """Start the worker thread (idempotent)."""
        with self._lock:
            if not self._started:
                self._thread.start()
                self._started = True
        return self

    def shutdown(self, *, timeout: float | None = 10.0) -> None:
        """Cancel nothing, finish queued jobs, free the model and stop the worker."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        if self._started:
            self._queue.put(None)
            self._thread.join(timeout)
        else:
            self._free()

    def __enter__(self) -> "EngineService":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    @property
    def loaded(self) -> ModelSpec | None:
        """The spec of the chat slot's loaded model, or None."""
        return self._slots["chat"].spec

    def loaded_in(self, slot: str) -> ModelSpec | None:
        """The spec of the model loaded in ``slot``, or None."""
        return self._slot(slot).spec

    def set_keep_alive(self, slot: str, seconds: float | None) -> None:
        """Free ``slot``'s model once no job has used it for ``seconds`` (None: keep it loaded)."""
        self._slot(slot).keep_alive = seconds
        self._queue.put(("", None))  # wake the worker so an idle model is checked at once

    # -- jobs ----------------------------------------------------------------------------------------------------

    def load(self, spec: ModelSpec, *, on_event: Callable[[EngineEvent], None] | None = None,
             slot: str = "chat") -> JobHandle:
        """Load a model into ``slot`` (replacing the one there); a no-op when the same spec is already loaded.

        Emits :class:`LoadProgress` events; cancelling the handle stops the load.
        """
        def run(handle: JobHandle) -> Steps:
            yield from self._loaded(spec, handle, slot)
            return None

        return self._submit("load", run, on_event, slot=slot)

    def unload(self, slot: str = "chat") -> JobHandle:
        """Free the model loaded in ``slot``."""
        return self._submit("unload", lambda h: self._alone(self._slot(slot).free), None, slot=slot)

    def reset(self) -> JobHandle:
        """Forget the KV cache of the chat model, every sequence (the next prompt is evaluated from scratch)."""
        chat = self._slots["chat"]
        return self._submit("reset", lambda h: self._alone(lambda: chat.model.clear_all() if chat.model else None),
                            None)

    def chat(self, messages: Sequence[Message], options: SamplingOptions, *, model: ModelSpec | None = None,
             on_event: Callable[[EngineEvent], None] | None = None, grammar: str | None = None,
             tools: ToolRequest | None = None, logprobs: int | None = None,
             interactive: bool = False, slot: str = "chat") -> JobHandle:
        """Generate the assistant's reply to ``messages`` (dicts with ``role`` and ``content``).

        The prompt is built with the model's own chat template. When ``model`` is given it is loaded first if it
        is not the loaded one. Events: :class:`TokenText` as the reply streams, then :class:`Finished` whose result
        is a :class:`ChatResult`. ``grammar`` (GBNF, root rule ``root``) constrains the reply.

        ``tools``: functions the reply may call (see :mod:`inference.tools`); the result's ``tools`` then holds the
        reply split into content and calls. Messages may carry earlier calls (an assistant's ``tool_calls``: dicts
        with ``name``, ``arguments`` as an object and ``id``) and ``tool`` messages with their results.

        ``logprobs``: send a :class:`~inference.logprobs.TokenLogprob` event before each token's text, with that
        many (0-20) likeliest alternatives (None: none; such replies decode without speculation).

        ``interactive``: the desktop's own turn; it goes before API jobs and always finds a sequence slot.
        ``slot``: which model slot answers (``large``: the router's large tier, loaded beside the chat model).
        """
        msgs = [{"role": m["role"], "content": m.get("content") or "",
                 **{k: m[k] for k in _TOOL_KEYS if m.get(k)}} for m in messages]
        with_tools = tools is not None or any(len(m) > 2 or m["role"] == "tool" for m in msgs)

        def run(handle: JobHandle) -> Steps:
            llm = yield from self._loaded(model, handle, slot)
            started = time.perf_counter()
            rendered, tool_defs = msgs, None
            if with_tools:
                rendered, tool_defs = prompt_messages(msgs, tools, native=template_knows_tools(
                    model_template(llm).source))
            prompt = fit_chat_prompt(llm, rendered, options.max_tokens, tools=tool_defs)
            yield Acquire(prompt.tokens, reserve=len(prompt.tokens) + options.max_tokens + TOOL_SLACK)
            if tools is not None and tools.choice != "none":
                result = yield from self._reply_with_tools(llm, prompt.tokens, options, handle, started, tools,
                                                           keep=prompt.keep, logprobs=logprobs, slot=slot)
            else:
                result = yield from self._generate(llm, prompt.tokens, options, handle, started, grammar=grammar,
                                                   keep=prompt.keep, logprobs=logprobs, slot=slot)
                if tools is not None:
                    result = dataclasses.replace(result, tools=ToolReply(result.text))
            if prompt.dropped:
                result = dataclasses.replace(result, stats=dataclasses.replace(result.stats,
                                                                              trimmed_messages=prompt.dropped))
            return result

        return self._submit("chat", run, on_event, interactive=interactive, slot=slot)

    def glimpse(self, messages: Sequence[Message], options: SamplingOptions, *, model: ModelSpec,
                n_tokens: int = 2, hidden: Sequence[str] = (), keep: Callable[[Probe | None], bool] | None = None,
                on_event: Callable[[EngineEvent], None] | None = None, interactive: bool = False) -> JobHandle:
        """The router's ``auto`` turn on the chat slot: glimpse at the small model's first ``n_tokens`` greedy
        answer tokens (:func:`~inference.route_signals.glimpse_steps`, reading the ``hidden`` states too), then ask
        ``keep`` (called on the worker thread with the glimpse, None when the prompt could not be evaluated)
        whether the small model answers. If it does, the reply follows in the same sequence from the glimpse's
        prefill, streaming :class:`TokenText` as :meth:`chat` does. :class:`Finished` carries a
        :class:`RoutedSmall`."""
        msgs = [{"role": m["role"], "content": m.get("content") or ""} for m in messages]

        def run(handle: JobHandle) -> Steps:
            llm = yield from self._loaded(model, handle)
            started = time.perf_counter()
            prompt = fit_chat_prompt(llm, msgs, options.max_tokens)
            yield Acquire(prompt.tokens, reserve=len(prompt.tokens) + max(options.max_tokens, n_tokens))
            try:
                g: Probe | None = yield from glimpse_steps(llm, prompt.tokens, n_tokens=n_tokens, hidden=hidden,
                                                           should_stop=lambda: handle.cancelled)
            except EngineError as exc:  # the decision rests on the prompt; the answer reports the error
                log.info("no glimpse: %s", exc)
                g = None
            if keep is None or not keep(g):
                return RoutedSmall(g, None)
            result = yield from self._generate(llm, prompt.tokens, options, handle, started, keep=prompt.keep)
            if prompt.dropped:
                result = dataclasses.replace(result, stats=dataclasses.replace(result.stats,
                                                                              trimmed_messages=prompt.dropped))
            return RoutedSmall(g, result)

        return self._submit("glimpse", run, on_event, interactive=interactive)

    def probe_reply(self, messages: Sequence[Message], options: SamplingOptions, *, model: ModelSpec,
                    hidden: Sequence[str] = (), stream: bool = False,
                    on_event: Callable[[EngineEvent], None] | None = None, interactive: bool = False) -> JobHandle:
        """The router's ``cascade`` answer on the chat slot: the small model's whole reply with its uncertainty at
        every token (:func:`~inference.route_signals.probe_steps`), streamed as :class:`TokenText` only with
        ``stream``. :class:`Finished` carries a :class:`RoutedSmall` whose ``probe`` holds the reply."""
        msgs = [{"role": m["role"], "content": m.get("content") or ""} for m in messages]

        def run(handle: JobHandle) -> Steps:
            llm = yield from self._loaded(model, handle)
            prompt = fit_chat_prompt(llm, msgs, options.max_tokens)
            yield Acquire(prompt.tokens, reserve=len(prompt.tokens) + options.max_tokens)
            send = (lambda text: handle.emit(TokenText(text))) if stream else None
            p = yield from probe_steps(llm, prompt.tokens, options, max_tokens=options.max_tokens, hidden=hidden,
                                       should_stop=lambda: handle.cancelled, on_text=send, states=self._states,
                                       keep=prompt.keep)
            return RoutedSmall(p, None, dropped=prompt.dropped, opening=answer_opening(llm, p.tokens))

        return self._submit("probe", run, on_event, interactive=interactive)

    def complete(self, prompt: str, options: SamplingOptions, *, model: ModelSpec | None = None,
                 on_event: Callable[[EngineEvent], None] | None = None, grammar: str | None = None,
                 interactive: bool = False) -> JobHandle:
        """Continue raw ``prompt`` text (no chat template). Same events as :meth:`chat`."""

        def run(handle: JobHandle) -> Steps:
            llm = yield from self._loaded(model, handle)
            started = time.perf_counter()
            tokens = llm.tokenize(prompt, add_special=True, parse_special=False)
            yield Acquire(tokens, reserve=len(tokens) + options.max_tokens)
            return (yield from self._generate(llm, tokens, options, handle, started, grammar=grammar))

        return self._submit("complete", run, on_event, interactive=interactive)

    def embed(self, texts: Sequence[str], *, model: ModelSpec | None = None,
              on_event: Callable[[EngineEvent], None] | None = None) -> JobHandle:
        """Embed ``texts`` with ``model`` (loaded first if needed) in a separate embeddings context.

        :class:`Finished` carries an :class:`inference.embeddings.EmbeddingResult`; cancelling stops between texts.
        """
        items = list(texts)

        def run(handle: JobHandle) -> Steps:
            from inference.embeddings import embed_texts

            llm = yield from self._loaded(model, handle)
            yield Exclusive()
            try:
                return embed_texts(llm, items, should_stop=lambda: handle.cancelled)
            except InterruptedError:
                raise EngineError("The embedding job was cancelled.") from None

        return self._submit("embed", run, on_event)

    @property
    def pending(self) -> int:
        """How many submitted jobs wait for the worker (not counting those it runs)."""
        return self._queue.qsize() + sum(len(s.scheduler.waiting) for s in self._slots.values())

    @property
    def parallel(self) -> int:
        """API generation jobs that run at once (per model slot)."""
        return self._slots["chat"].scheduler.parallel

    def snapshot(self) -> dict[str, Any]:
        """Running and waiting jobs (each one's model slot, sequence and state) and the loaded models, for
        ``/health``."""
        chat = self._slots["chat"].scheduler
        out: dict[str, Any] = {"parallel": chat.parallel, "slots": chat.n_slots, "prefill_chunk": chat.prefill_chunk,
                               "running": [], "waiting": []}
        for name, slot in self._slots.items():
            snap = slot.scheduler.snapshot()
            out["running"] += [{**j, "model": name} for j in snap["running"]]
            out["waiting"] += [{**j, "model": name} for j in snap["waiting"]]
        out["queued"] = self._queue.qsize()
        out["steps"] = sum(s.scheduler.steps for s in self._slots.values())
        out["largest_batch"] = max(s.scheduler.max_batch for s in self._slots.values())
        out["most_generating"] = max(s.scheduler.max_generating for s in self._slots.values())
        out["models"] = self.models()
        return out

    def models(self) -> list[dict[str, Any]]:
        """Every model this engine holds, by slot (``chat``, ``draft``, ``large``): name, layers, layers on the
        GPU, the bytes of its weights and of its KV cache (``/health``, ``ember doctor --loaded``)."""
        out = []
        for name, slot in self._slots.items():
            model, spec = slot.model, slot.spec
            if model is None or spec is None:
                continue
            out.append({"slot": name, "name": spec.name, **model.memory, "threads": model.thread_plan()})
            draft = slot.speculative.draft_model
            if draft is not None:
                out.append({"slot": "draft" if name == "chat" else f"{name}-draft", "name": draft.path.stem,
                            **draft.memory})
        return out

    def call(self, fn: Callable[[LlamaModel | None], Any], *, slot: str = "chat") -> JobHandle:
        """Run ``fn(model)`` on the worker thread, alone, with a free sequence of ``slot``'s model selected (the
        most recently used one: a just-finished reply's cache) — for benchmarks and tests that need the context
        itself (every llama.cpp computation belongs on this thread)."""
        holder = self._slot(slot)

        def run(handle: JobHandle) -> Steps:
            yield Acquire(None)
            yield Exclusive()
            return fn(holder.model)

        return self._submit("call", run, None, slot=slot)

    # -- worker side ---------------------------------------------------------------------------------------------

    @staticmethod
    def _alone(fn: Callable[[], Any]) -> Steps:
        yield Drain()
        return fn()

    def _submit(self, kind: str, run: Callable[[JobHandle], Any],
                on_event: Callable[[EngineEvent], None] | None, *, interactive: bool = False,
                slot: str = "chat") -> JobHandle:
        if self._stopped:
            raise EngineError("The engine has been shut down.")
        self._slot(slot)
        self.start()
        handle = JobHandle(kind, on_event)
        self._queue.put((slot, SeqJob(handle, run(handle), interactive=interactive, on_end=_finish)))
        return handle

    def _worker(self) -> None:
        slots = list(self._slots.values())
        stopping = False
        while True:
            busy = any(s.scheduler.busy for s in slots)
            timed = any(s.keep_alive is not None and s.model is not None for s in slots)
            parked = not busy and any(s.scheduler.parked for s in slots)  # idle work: save it before waiting
            try:
                item = self._queue.get(block=not busy and not parked, timeout=1.0 if timed and not busy else None)
                while True:
                    if item is None:
                        stopping = True
                    elif item[1] is not None:
                        self._slots[item[0]].scheduler.add(item[1])
                    item = self._queue.get_nowait()
            except queue.Empty:
                pass
            if stopping and not any(s.scheduler.busy for s in slots):
                break
            now = time.monotonic()
            for slot in slots:  # one step of each model in turn
                sched = slot.scheduler
                if not sched.busy:
                    if (slot.keep_alive is not None and slot.model is not None
                            and now - slot.last_used >= slot.keep_alive):
                        log.info("freeing %s (%s slot) after %.0f s unused", slot.spec.name if slot.spec else "?",
                                 slot.name, now - slot.last_used)
                        slot.free()
                    elif not stopping:
                        sched.flush_parked()  # one per round: a job that arrives meanwhile waits for one at most
                    continue
                try:
                    sched.run_once()
                except Exception:  # a bug in the scheduler itself: fail what runs, keep serving
                    log.exception("engine scheduler failed")
                    for j in list(sched.active):
                        sched._end(j, None, EngineError("The engine hit an internal error; see Ember's log."))
                slot.last_used = time.monotonic()
        self._free()

    def _loaded(self, spec: ModelSpec | None, handle: JobHandle, slot: str = "chat") -> Steps:
        """The model for ``spec`` in ``slot``: loading it (alone: nothing else may use the old model) when it is
        not loaded."""
        held = self._slots[slot]
        if spec is not None and (held.model is None or held.spec is None
                                 or replace(spec, speculative=None) != replace(held.spec, speculative=None)):
            yield Drain()
        return self._ensure_loaded(spec, handle, held)

    def _ensure_loaded(self, spec: ModelSpec | None, handle: JobHandle, held: _Slot) -> LlamaModel:
        if (spec is not None and held.model is not None and held.spec is not None and spec != held.spec
                and replace(spec, speculative=None) == replace(held.spec, speculative=None)):
            # same target, another drafter: keep the target and its cache. prepare() frees the old drafter first,
            # so until the new one is ready the loaded spec says "no drafter": if it fails (the error goes to the
            # caller), a later request with the old spec sets the old drafter up again instead of decoding plainly.
            held.spec = replace(spec, speculative=None)
            held.speculative.prepare(spec.speculative, held.model, progress=lambda f: not handle.cancelled)
            held.spec = spec
            return held.model
        if spec is None or spec == held.spec:
            if held.model is None:
                raise EngineError("No model is loaded. Choose a model first." if held.name == "chat" else
                                  f"No model is loaded in the {held.name} slot.")
            return held.model
        params = spec.params
        threads = params.n_threads or physical_cores()
        # One memory plan over the slots: the other slots' models hold their share of RAM and VRAM already (the
        # free memory it is planned against), and this slot's old model gives its share back.
        plan = preflight(spec.path, n_ctx=params.n_ctx, n_batch=params.n_batch, threads=threads, name=spec.name,
                         held_ram=held.model.path.stat().st_size if held.model is not None else 0)
        held.load_plan = plan
        if plan is not None:
            log.info("offload plan for %s (%s slot): %s", spec.name, held.name, plan.summary())
            if params.n_gpu_layers == -1:  # auto: as many layers as the plan gives the GPU
                params = replace(params, n_gpu_layers=plan.target_gpu_layers)
        held.free()
        last = [-1.0]

        def progress(fraction: float) -> bool:
            if fraction - last[0] >= 0.01 or fraction >= 1.0:
                last[0] = fraction
                handle.emit(LoadProgress(fraction))
            return not handle.cancelled

        model = LlamaModel(spec.path, replace(params, n_seq=held.scheduler.n_slots, n_park=held.scheduler.parking),
                           progress=progress)
        try:
            model_template(model)  # a template that cannot be used fails the load, not the first reply
        except BaseException:
            model.close()
            raise
        held.model, held.spec = model, replace(spec, speculative=None)
        log.info("loaded %s (%s) in the %s slot: n_ctx=%d threads=%d", spec.name, spec.path, held.name, model.n_ctx,
                 model.n_threads)
        if spec.speculative is not None:
            held.speculative.prepare(spec.speculative, model, progress=lambda f: not handle.cancelled)
            held.spec = spec
        return model

    def _generate(self, llm: LlamaModel, prompt: Sequence[int], options: SamplingOptions,
                  handle: JobHandle, started: float, *, grammar: str | None = None, keep: int = 4,
                  emit: Callable[[str], None] | None = None,
                  should_stop: Callable[[], bool] | None = None, logprobs: int | None = None,
                  slot: str = "chat") -> Steps:
        """Run the decode loop in the job's sequence; TTFT counts from ``started`` (after any model load, before
        templating). Returns a :class:`ChatResult`.

        ``emit`` receives the text instead of the handle's :class:`TokenText` events; ``should_stop`` replaces
        the handle's cancel flag; ``logprobs`` as in :meth:`chat`."""
        parts: list[str] = []
        send = emit or (lambda text: handle.emit(TokenText(text)))
        stop = should_stop or (lambda: handle.cancelled)

        def on_text(text: str) -> None:
            parts.append(text)
            send(text)

        # Replies with DRY, log-probabilities or ignore_eos decode plainly: the speculative path samples with its own
        # copy of the chain (inference/spec_sampling.py), which has none of them.
        on_logits = None
        if logprobs is not None:
            def on_logits(token: int, index: int) -> None:
                if not llm.is_eog(token):
                    handle.emit(token_logprob(llm, token, logprobs, index))

        speculative = self._slots[slot].speculative
        if (speculative.active and speculative.pays and options.dry_multiplier == 0.0 and not options.ignore_eos
                and on_logits is None):
            stats = yield from speculative.steps(llm, prompt, options, should_stop=stop, on_text=on_text,
                                                 started=started, grammar=grammar, states=self._states, keep=keep)
        else:
            stats = yield from generate_steps(llm, prompt, options, should_stop=stop, on_text=on_text,
                                              started=started, grammar=grammar, keep=keep, states=self._states,
                                              on_logits=on_logits)
        return ChatResult("".join(parts), stats)

    def _reply_with_tools(self, llm: LlamaModel, prompt: Sequence[int], options: SamplingOptions,
                          handle: JobHandle, started: float, tools: ToolRequest, *, keep: int,
                          logprobs: int | None = None, slot: str = "chat") -> Steps:
        """A reply that may call ``tools`` (returns a :class:`ChatResult`). A forced call (``required``, a named function) is generated under the
        call grammar from the first token. With ``auto`` the reply is free text until the model writes the opener
        ``<tool_call>``; the same sequence then continues under the grammar, so the call's arguments match their
        schema. Both phases stream their text to the handle as one reply (the opener included)."""
        if tools.forced:
            result = yield from self._generate(llm, prompt, options.model_copy(update={"stop": []}), handle, started,
                                               grammar=call_grammar(tools), keep=keep, logprobs=logprobs, slot=slot)
            return dataclasses.replace(result, tools=parse_reply(result.text))
        watch = _OpenerWatch(lambda text: handle.emit(TokenText(text)))
        first = yield from self._generate(llm, prompt, options, handle, started, keep=keep, emit=watch.push,
                                          should_stop=lambda: handle.cancelled or watch.opened, logprobs=logprobs,
                                          slot=slot)
        if not watch.opened or handle.cancelled:
            watch.flush()
            text = watch.content
            return ChatResult(text, first.stats, tools=parse_reply(text))
        handle.emit(TokenText(OPEN))
        head = watch.content + OPEN
        left = options.max_tokens - first.stats.completion_tokens
        if left <= 0:
            stats = dataclasses.replace(first.stats, finish_reason="length")
            return ChatResult(head, stats, tools=parse_reply(head))
        follow = list(prompt) + llm.tokenize(head, add_special=False, parse_special=True)
        second = yield from self._generate(llm, follow, options.model_copy(update={"stop": [], "max_tokens": left}),
                                           handle, started, grammar=call_grammar(tools, after_opener=True),
                                           keep=keep, logprobs=logprobs, slot=slot)
        s1, s2 = first.stats, second.stats
        stats = dataclasses.replace(s1, completion_tokens=s1.completion_tokens + s2.completion_tokens,
                                    prompt_ms=round(s1.prompt_ms + s2.prompt_ms, 2),
                                    tokens_per_s=s2.tokens_per_s or s1.tokens_per_s, total_ms=s2.total_ms,
                                    finish_reason=s2.finish_reason)
        text = head + second.text
        return ChatResult(text, stats, tools=parse_reply(text))

    def _free(self) -> None:
        for slot in self._slots.values():
            slot.free()


def _finish(job: SeqJob, result: Any, error: BaseException | None) -> None:
    """Report a job's end through its handle (a bug's traceback goes to the log)."""
    handle = job.handle
    if error is None:
        stats = result.stats if isinstance(result, ChatResult) else None
        handle.emit(Finished(result=result, stats=stats))
    elif isinstance(error, EmberError):
        handle.emit(Failed(error))
    elif isinstance(error, Exception):  # a bug: keep the traceback in the log, report it, keep serving
        log.error("engine job %s (%s) failed", handle.id, handle.kind, exc_info=error)
        handle.emit(Failed(error))
    else:  # KeyboardInterrupt, SystemExit, GeneratorExit: report, then let it stop the worker
        handle.emit(Failed(EngineError("The engine stopped while this job ran.")))
        raise error


class _OpenerWatch:
    """Passes reply text on until the tool-call opener appears (text that may begin it is held back); what came
    before the opener is :attr:`content`, and :attr:`opened` turns True."""

    def __init__(self, send: Callable[[str], None]) -> None:
        self._send = send
        self._held = ""
        self._sent: list[str] = []
        self.opened = False

    def push(self, text: str) -> None:
        if self.opened:
            return
        self._held += text
        at = self._held.find(OPEN)
        if at >= 0:
            self._release(self._held[:at])
            self._held = ""
            self.opened = True
            return
        keep = next((n for n in range(min(len(self._held), len(OPEN) - 1), 0, -1)
                     if OPEN.startswith(self._held[-n:])), 0)
        self._release(self._held[:len(self._held) - keep])
        self._held = self._held[len(self._held) - keep:]

    def flush(self) -> None:
        if not self.opened:
            self._release(self._held)
        self._held = ""

    def _release(self, text: str) -> None:
        if text:
            self._sent.append(text)
            self._send(text)

    @property
    def content(self) -> str:
        return "".join(self._sent)
