"""The engine service: one worker thread owns every llama.cpp context and runs every job.

Front ends (the chat window, the local API, the CLI) submit jobs and read events back from a :class:`JobHandle`,
by iterating it or through a callback. Cancelling a job sets a flag that the worker checks before every token.

Generation jobs run at the same time as sequences of one context: the worker's scheduler
(:mod:`inference.scheduler`) puts the next token of every running reply, and a bounded chunk of waiting prompts,
into one ``llama_decode`` per step. The desktop's turns (``interactive``) go before API jobs and always find a
slot. Work that cannot share a batch (speculative decoding, embeddings, a model load) runs alone between steps.
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
from inference.scheduler import BatchScheduler, SeqJob
from inference.spec_runtime import SpeculativeConfig, SpeculativeRuntime
from inference.steps import Acquire, Drain, Exclusive, Steps
from inference.tools import OPEN, ToolReply, ToolRequest, call_grammar, parse_reply, prompt_messages, \
    template_knows_tools
from storage.errors import EmberError

log = logging.getLogger(__name__)

Message = Mapping[str, Any]
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


class EngineService:
    """Owns the loaded model on one worker thread; every operation is a job, generation jobs run batched.

    Args:
        name: thread name (for logs and debuggers).
        states: saved KV states of earlier conversations (None: no saving).
        parallel: generation jobs of API clients that run at once (one more slot is kept for interactive jobs);
            None: :func:`~inference.hardware.batching_defaults`.
        prefill_chunk: most prompt tokens a step evaluates while other sequences are generating (None: as
            ``parallel``).
        slot: the name its model is reported under (:meth:`models`).
    """

    def __init__(self, *, name: str = "ember-engine", states: StateCache | None = None, parallel: int | None = None,
                 prefill_chunk: int | None = None, slot: str = "chat") -> None:
        default_parallel, default_chunk = batching_defaults()
        self.slot = slot  # what its model is for, in reports: "chat", or "large" (the router's large tier)
        self._states = states
        self.load_plan: OffloadPlan | None = None  # the plan of the last load (GPU layers, threads, memory)
        self._queue: queue.Queue[SeqJob | None] = queue.Queue()
        self._thread = threading.Thread(target=self._worker, name=name, daemon=True)
        self._model: LlamaModel | None = None
        self._spec: ModelSpec | None = None
        self._speculative = SpeculativeRuntime()  # the drafter of the loaded model, if its spec asks for one
        self._scheduler = BatchScheduler(parallel=parallel or default_parallel,
                                         prefill_chunk=prefill_chunk or default_chunk, model=lambda: self._model,
                                         states=states)
        self._lock = threading.Lock()
        self._started = False
        self._stopped = False

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
        """The spec of the loaded model, or None."""
        return self._spec

    # -- jobs ----------------------------------------------------------------------------------------------------

    def load(self, spec: ModelSpec, *, on_event: Callable[[EngineEvent], None] | None = None) -> JobHandle:
        """Load a model (replacing the loaded one); a no-op when the same spec is already loaded.

        Emits :class:`LoadProgress` events; cancelling the handle stops the load.
        """
        def run(handle: JobHandle) -> Steps:
            yield from self._loaded(spec, handle)
            return None

        return self._submit("load", run, on_event)

    def unload(self) -> JobHandle:
        """Free the loaded model."""
        return self._submit("unload", lambda h: self._alone(self._free), None)

    def reset(self) -> JobHandle:
        """Forget the KV cache of the loaded model, every sequence (the next prompt is evaluated from scratch)."""
        return self._submit("reset", lambda h: self._alone(lambda: self._model.clear_all() if self._model else None),
                            None)

    def chat(self, messages: Sequence[Message], options: SamplingOptions, *, model: ModelSpec | None = None,
             on_event: Callable[[EngineEvent], None] | None = None, grammar: str | None = None,
             tools: ToolRequest | None = None, logprobs: int | None = None,
             interactive: bool = False) -> JobHandle:
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
        """
        msgs = [{"role": m["role"], "content": m.get("content") or "",
                 **{k: m[k] for k in _TOOL_KEYS if m.get(k)}} for m in messages]
        with_tools = tools is not None or any(len(m) > 2 or m["role"] == "tool" for m in msgs)

        def run(handle: JobHandle) -> Steps:
            llm = yield from self._loaded(model, handle)
            started = time.perf_counter()
            rendered, tool_defs = msgs, None
            if with_tools:
                rendered, tool_defs = prompt_messages(msgs, tools, native=template_knows_tools(
                    model_template(llm).source))
            prompt = fit_chat_prompt(llm, rendered, options.max_tokens, tools=tool_defs)
            yield Acquire(prompt.tokens)
            if tools is not None and tools.choice != "none":
                result = yield from self._reply_with_tools(llm, prompt.tokens, options, handle, started, tools,
                                                           keep=prompt.keep, logprobs=logprobs)
            else:
                result = yield from self._generate(llm, prompt.tokens, options, handle, started, grammar=grammar,
                                                   keep=prompt.keep, logprobs=logprobs)
                if tools is not None:
                    result = dataclasses.replace(result, tools=ToolReply(result.text))
            if prompt.dropped:
                result = dataclasses.replace(result, stats=dataclasses.replace(result.stats,
                                                                              trimmed_messages=prompt.dropped))
            return result

        return self._submit("chat", run, on_event, interactive=interactive)

    def complete(self, prompt: str, options: SamplingOptions, *, model: ModelSpec | None = None,
                 on_event: Callable[[EngineEvent], None] | None = None, grammar: str | None = None,
                 interactive: bool = False) -> JobHandle:
        """Continue raw ``prompt`` text (no chat template). Same events as :meth:`chat`."""

        def run(handle: JobHandle) -> Steps:
            llm = yield from self._loaded(model, handle)
            started = time.perf_counter()
            tokens = llm.tokenize(prompt, add_special=True, parse_special=False)
            yield Acquire(tokens)
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
        return self._queue.qsize() + len(self._scheduler.waiting)

    @property
    def parallel(self) -> int:
        """API generation jobs that run at once."""
        return self._scheduler.parallel

    def snapshot(self) -> dict[str, Any]:
        """Running and waiting jobs (each running one's sequence slot and state), for ``/health``."""
        out = self._scheduler.snapshot()
        out["queued"] = self._queue.qsize()
        out["steps"] = self._scheduler.steps
        out["largest_batch"] = self._scheduler.max_batch
        out["models"] = self.models()
        return out

    def models(self) -> list[dict[str, Any]]:
        """Every model this engine holds, by slot (``chat``, ``draft``): name, layers, layers on the GPU, the
        bytes of its weights and of its KV cache (``/health``, ``ember doctor --loaded``)."""
        model, spec = self._model, self._spec
        if model is None or spec is None:
            return []
        out = [{"slot": self.slot, "name": spec.name, **model.memory}]
        draft = self._speculative.draft_model
        if draft is not None:
            out.append({"slot": "draft", "name": draft.path.stem, **draft.memory})
        return out

    def call(self, fn: Callable[[LlamaModel | None], Any]) -> JobHandle:
        """Run ``fn(model)`` on the worker thread, alone, with a free sequence selected (the most recently used
        one: a just-finished reply's cache) — for tools, benchmarks and tests that need the context itself."""

        def run(handle: JobHandle) -> Steps:
            yield Acquire(None)
            yield Exclusive()
            return fn(self._model)

        return self._submit("call", run, None)

    # -- worker side ---------------------------------------------------------------------------------------------

    @staticmethod
    def _alone(fn: Callable[[], Any]) -> Steps:
        yield Drain()
        return fn()

    def _submit(self, kind: str, run: Callable[[JobHandle], Any],
                on_event: Callable[[EngineEvent], None] | None, *, interactive: bool = False) -> JobHandle:
        if self._stopped:
            raise EngineError("The engine has been shut down.")
        self.start()
        handle = JobHandle(kind, on_event)
        self._queue.put(SeqJob(handle, run(handle), interactive=interactive, on_end=_finish))
        return handle

    def _worker(self) -> None:
        sched = self._scheduler
        stopping = False
        while True:
            try:
                job = self._queue.get(block=not sched.busy)
                while True:
                    if job is None:
                        stopping = True
                    else:
                        sched.add(job)
                    job = self._queue.get_nowait()
            except queue.Empty:
                pass
            if stopping and not sched.busy:
                break
            try:
                sched.run_once()
            except Exception:  # a bug in the scheduler itself: fail what runs, keep serving
                log.exception("engine scheduler failed")
                for j in list(sched.active):
                    sched._end(j, None, EngineError("The engine hit an internal error; see Ember's log."))
        self._free()

    def _loaded(self, spec: ModelSpec | None, handle: JobHandle) -> Steps:
        """The model for ``spec``: loading it (alone: nothing else may use the old model) when it is not loaded."""
        if spec is not None and (self._model is None or self._spec is None
                                 or replace(spec, speculative=None) != replace(self._spec, speculative=None)):
            yield Drain()
        return self._ensure_loaded(spec, handle)

    def _ensure_loaded(self, spec: ModelSpec | None, handle: JobHandle) -> LlamaModel:
        if (spec is not None and self._model is not None and self._spec is not None and spec != self._spec
                and replace(spec, speculative=None) == replace(self._spec, speculative=None)):
            # same target, another drafter: keep the target and its cache. prepare() frees the old drafter first,
            # so until the new one is ready the loaded spec says "no drafter": if it fails (the error goes to the
            # caller), a later request with the old spec sets the old drafter up again instead of decoding plainly.
            self._spec = replace(spec, speculative=None)
            self._speculative.prepare(spec.speculative, self._model, progress=lambda f: not handle.cancelled)
            self._spec = spec
            return self._model
        if spec is None or spec == self._spec:
            if self._model is None:
                raise EngineError("No model is loaded. Choose a model first.")
            return self._model
        params = spec.params
        threads = params.n_threads or physical_cores()
        plan = preflight(spec.path, n_ctx=params.n_ctx, n_batch=params.n_batch, threads=threads, name=spec.name,
                         held_ram=self._model.path.stat().st_size if self._model is not None else 0)
        self.load_plan = plan
        if plan is not None:
            log.info("offload plan for %s: %s", spec.name, plan.summary())
            if params.n_gpu_layers == -1:  # auto: as many layers as the plan gives the GPU
                params = replace(params, n_gpu_layers=plan.target_gpu_layers)
        self._free()
        last = [-1.0]

        def progress(fraction: float) -> bool:
            if fraction - last[0] >= 0.01 or fraction >= 1.0:
                last[0] = fraction
                handle.emit(LoadProgress(fraction))
            return not handle.cancelled

        model = LlamaModel(spec.path, replace(params, n_seq=self._scheduler.n_slots), progress=progress)
        try:
            model_template(model)  # a template that cannot be used fails the load, not the first reply
        except BaseException:
            model.close()
            raise
        self._model, self._spec = model, replace(spec, speculative=None)
        log.info("loaded %s (%s): n_ctx=%d threads=%d", spec.name, spec.path, model.n_ctx, model.n_threads)
        if spec.speculative is not None:
            self._speculative.prepare(spec.speculative, model, progress=lambda f: not handle.cancelled)
            self._spec = spec
        return model

    def _generate(self, llm: LlamaModel, prompt: Sequence[int], options: SamplingOptions,
                  handle: JobHandle, started: float, *, grammar: str | None = None, keep: int = 4,
                  emit: Callable[[str], None] | None = None,
                  should_stop: Callable[[], bool] | None = None, logprobs: int | None = None) -> Steps:
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

        # Grammar-constrained replies decode plainly, and so do replies with DRY: the speculative path samples with
        # its own copy of the chain (inference/spec_sampling.py), which has no DRY.
        on_logits = None
        if logprobs is not None:
            def on_logits(token: int, index: int) -> None:
                if not llm.is_eog(token):
                    handle.emit(token_logprob(llm, token, logprobs, index))

        if (self._speculative.active and grammar is None and options.dry_multiplier == 0.0 and not options.ignore_eos
                and on_logits is None):
            yield Exclusive()  # drafting and verifying run alone, between batched steps
            stats = self._speculative.generate(llm, prompt, options, should_stop=stop,
                                               on_text=on_text, started=started)
        else:
            stats = yield from generate_steps(llm, prompt, options, should_stop=stop, on_text=on_text,
                                              started=started, grammar=grammar, keep=keep, states=self._states,
                                              on_logits=on_logits)
        return ChatResult("".join(parts), stats)

    def _reply_with_tools(self, llm: LlamaModel, prompt: Sequence[int], options: SamplingOptions,
                          handle: JobHandle, started: float, tools: ToolRequest, *, keep: int,
                          logprobs: int | None = None) -> Steps:
        """A reply that may call ``tools`` (returns a :class:`ChatResult`). A forced call (``required``, a named function) is generated under the
        call grammar from the first token. With ``auto`` the reply is free text until the model writes the opener
        ``<tool_call>``; the same sequence then continues under the grammar, so the call's arguments match their
        schema. Both phases stream their text to the handle as one reply (the opener included)."""
        if tools.forced:
            result = yield from self._generate(llm, prompt, options.model_copy(update={"stop": []}), handle, started,
                                               grammar=call_grammar(tools), keep=keep, logprobs=logprobs)
            return dataclasses.replace(result, tools=parse_reply(result.text))
        watch = _OpenerWatch(lambda text: handle.emit(TokenText(text)))
        first = yield from self._generate(llm, prompt, options, handle, started, keep=keep, emit=watch.push,
                                          should_stop=lambda: handle.cancelled or watch.opened, logprobs=logprobs)
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
                                           keep=keep, logprobs=logprobs)
        s1, s2 = first.stats, second.stats
        stats = dataclasses.replace(s1, completion_tokens=s1.completion_tokens + s2.completion_tokens,
                                    prompt_ms=round(s1.prompt_ms + s2.prompt_ms, 2),
                                    tokens_per_s=s2.tokens_per_s or s1.tokens_per_s, total_ms=s2.total_ms,
                                    finish_reason=s2.finish_reason)
        text = head + second.text
        return ChatResult(text, stats, tools=parse_reply(text))

    def _free(self) -> None:
        self._speculative.close()
        if self._model is not None:
            self._model.close()
        self._model = self._spec = None


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
