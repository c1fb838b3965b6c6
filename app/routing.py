"""The router as front ends use it: which tier answers a chat turn, run through one job handle.

A routed turn is a :class:`~inference.engine.JobHandle` driven by a small thread: it scores the query (prompt
features plus the small model's glimpse for ``auto``; the whole small answer for ``cascade``), picks the tier,
streams the chosen tier's reply into the handle, records the decision in SQLite and ends with a ``Finished`` event
whose stats carry a ``router`` entry. The CLI, the desktop window and the API all get here through
:class:`app.services.chat.Turn`, so they share one path.

Every local computation is a job of the one engine: the glimpse (and the small answer that follows it in the same
sequence) and the cascade's probed answer on the chat slot, a local large tier on the engine's ``large`` slot, so
the small model and its KV cache stay loaded. The other large tier is a remote OpenAI-compatible server. When the large tier fails, the user gets a clear message and the small model's
answer.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from inference.engine import ChatResult, JobHandle, ModelSpec, RoutedSmall
from inference.events import EngineEvent, Failed, Finished, GenerationStats, LoadProgress, Retracted, TokenText
from inference import route_weights
from app import route_agreement as agreement
from inference.hidden_probe import SHIPPED_DIR, HiddenProbe, find_probe
from inference.route_learning import OnlineRouter
from inference.remote_tier import RemoteEndpoint, remote_chat
from inference.route_signals import Probe, route_signals
from inference.router import POLICIES, RouteDecision, ScoreModel, calibrate_threshold
from inference.sampling import SamplingOptions
from storage.errors import EmberError, StorageError
from storage.routing import RoutingRecord, RoutingStore
from storage.secrets import get_secret

if TYPE_CHECKING:
    from app.services.surface import Core as Ember  # the running core, as every front end sees it

log = logging.getLogger(__name__)

Message = Mapping[str, str]
FORCE_PREFIXES = {"/large": "large", "/small": "small"}


class RouterError(EmberError, ValueError):
    """Routing was asked for but cannot work as configured (no large tier, unknown policy)."""


@dataclass(frozen=True)
class RouteRequest:
    """Per-request routing: a policy (None: the conversation's, else the settings') and a large tier (library
    model, .gguf path or ``http(s)://`` URL, ``URL#model`` naming the model; None: the conversation's, else the
    settings'; "": the settings')."""

    policy: str | None = None
    large: str | None = None


def split_force_prefix(text: str) -> tuple[str, str | None]:
    """``("question", "large")`` for ``"/large question"``; the text unchanged and None without a prefix."""
    stripped = text.lstrip()
    for prefix, tier in FORCE_PREFIXES.items():
        if stripped == prefix or stripped.startswith(prefix + " ") or stripped.startswith(prefix + "\n"):
            return stripped[len(prefix):].strip(), tier
    return text, None


@dataclass(frozen=True)
class LargeTier:
    """The resolved large tier: a local spec or a remote endpoint, and how it is named in records."""

    target: str
    spec: ModelSpec | None = None
    remote: RemoteEndpoint | None = None

    @property
    def model_name(self) -> str:
        if self.spec is not None:
            return self.spec.name
        assert self.remote is not None
        return self.remote.model or self.target


class Router:
    """Routes chat turns between the small and the large tier (one per running core: :func:`app.services.surface.router_of`)."""

    def __init__(self, core: Ember) -> None:
        self.core = core
        self.store = RoutingStore(core.db)
        self._lock = threading.Lock()
        self._probes: dict[str, HiddenProbe | None] = {}
        self._learn_lock = threading.RLock()  # labels come from the GUI thread, the CLI and routed turns
        self._learners: dict[str, OnlineRouter] = {}

    # -- configuration -------------------------------------------------------------------------------------------

    def policy_for(self, conversation_settings: Mapping[str, object] | None, request: RouteRequest | None) -> str:
        """The policy of a turn: the request's, else the conversation's, else the settings'.

        Raises:
            RouterError: an unknown policy name.
        """
        policy = (request.policy if request else None) or (conversation_settings or {}).get("router") \
            or self.core.settings.router.policy
        if policy not in POLICIES:
            raise RouterError(f"Unknown router policy {policy!r}: use one of {', '.join(POLICIES)}.")
        return str(policy)

    def large_tier(self, override: str | None = None) -> LargeTier:
        """The large tier from ``override`` or the settings.

        Raises:
            RouterError: none is configured.
            ModelNotFoundError, ModelFileError: the named local model does not exist or is unusable.
        """
        rs = self.core.settings.router
        target = override or rs.remote_url or rs.large_model
        if not target:
            raise RouterError("No large tier is configured. Give one with --large MODEL_OR_URL, or set "
                              "router.large_model or router.remote_url in settings.")
        if target.startswith(("http://", "https://")):
            url, _, model = target.partition("#")
            remote = RemoteEndpoint(base_url=url, model=model or rs.remote_model, api_key=get_secret(rs.remote_key),
                                    connect_timeout=rs.connect_timeout, read_timeout=rs.read_timeout,
                                    total_timeout=rs.total_timeout, retries=rs.retries)
            return LargeTier(target=url, remote=remote)
        spec = self.core.model_spec(target)
        return LargeTier(target=spec.name, spec=dataclasses.replace(spec, speculative=None))

    def hidden_probe(self, small: ModelSpec) -> HiddenProbe | None:
        """The hidden-state probe fitted for the small model's file (shipped, or the user's own under
        ``probes/`` in the data folder), or None: that model is routed on the other signals."""
        key = str(small.path)
        with self._lock:
            if key not in self._probes:
                self._probes[key] = find_probe(small.path, (SHIPPED_DIR, self.core.paths.home / "probes"))
            return self._probes[key]

    def threshold(self, policy: str) -> float:
        """The escalation threshold that holds the budget, calibrated on the stored scores of ``policy``."""
        rs = self.core.settings.router
        return calibrate_threshold(self.store.recent_scores(policy), rs.budget, default=rs.default_threshold,
                                   min_samples=rs.min_calibration)

    # -- learning from the user's labels ---------------------------------------------------------------------------

    def learner(self, policy: str, *, probe: bool = False) -> OnlineRouter:
        """The online learner of ``policy`` (auto or cascade) for a small model with (``probe``) or without a
        hidden-state probe: the shipped model and its validation split, with what the stored labels taught it
        (restored from storage on first use)."""
        if policy not in LEARNED_POLICIES:
            raise RouterError(f"The router learns for {' and '.join(LEARNED_POLICIES)} only, not {policy!r}.")
        key = route_weights.model_name(policy, probe=probe)
        with self._learn_lock:
            learner = self._learners.get(key)
            if learner is None:
                learner = OnlineRouter(route_weights.shipped_model(policy, probe=probe),
                                       validation=route_weights.validation_split(policy, probe=probe))
                state = self.store.load_learned(key)
                if state is not None:
                    learner.restore(state)
                self._learners[key] = learner
            return learner

    def score_model(self, policy: str, signals: Mapping[str, float]) -> tuple[ScoreModel, bool]:
        """The model that scores ``signals`` under ``policy`` and whether it is the learned one (``router.learn``
        on and at least one label learned from); otherwise the shipped model."""
        probe = _has_probe(signals)
        if self.core.settings.router.learn:
            with self._learn_lock:
                learner = self.learner(policy, probe=probe)
                if learner.updates:
                    return learner.model, True
        return route_weights.shipped_model(policy, probe=probe), False

    def learned_score(self, policy: str, signals: Mapping[str, float]) -> float:
        """The score the learned model of ``policy`` gives ``signals`` (whatever ``router.learn`` says)."""
        with self._learn_lock:
            return self.learner(policy, probe=_has_probe(signals)).score(signals)

    def label(self, decision: RoutingRecord, *, wrong: bool, source: str) -> bool:
        """Record the user's label of ``decision`` and learn from it (once per decision; an escalation overrides an
        earlier acceptance). Returns True when the label was new or changed.

        Raises:
            StorageError: the label or the learned state could not be stored.
        """
        with self._learn_lock:
            if not self.store.add_label(decision, wrong=wrong, source=source):
                return False
            if decision.policy in LEARNED_POLICIES:
                probe = _has_probe(decision.signals)
                learner = self.learner(decision.policy, probe=probe)
                learner.update(decision.signals, wrong)
                self.store.save_learned(route_weights.model_name(decision.policy, probe=probe), learner.state())
            return True

    def reset_learning(self) -> None:
        """Forget what the labels taught: every policy scores with the shipped weights again (the labels stay).

        Raises:
            StorageError: the reset could not be stored.
        """
        with self._learn_lock:
            self.store.clear_learned()
            for learner in self._learners.values():
                learner.reset()

    def learning_status(self) -> dict[str, dict[str, object]]:
        """Per learned policy: its labels, and per shipped model of it (``auto``, ``auto_probe``, ...) the updates
        taken and shrunk since the last reset and the validation AUROC of the learned and the shipped weights (None
        without a validation split)."""
        counts = self.store.label_counts()
        out: dict[str, dict[str, object]] = {}
        with self._learn_lock:
            for policy in LEARNED_POLICIES:
                models: dict[str, object] = {}
                for probe in (False, True):
                    key = route_weights.model_name(policy, probe=probe)
                    if key in models:
                        continue
                    learner = self.learner(policy, probe=probe)
                    shipped = OnlineRouter(learner.shipped, validation=learner.validation)
                    models[key] = {"updates": learner.updates, "rejected": learner.rejected,
                                   "learned_auroc": learner.validation_auroc(),
                                   "shipped_auroc": shipped.validation_auroc(),
                                   "validation_items": len(learner.validation)}
                out[policy] = {**counts.get(policy, {"wrong": 0, "right": 0}), "models": models}
        return out

    # -- running a turn ------------------------------------------------------------------------------------------

    def start(self, messages: Sequence[Message], options: SamplingOptions, *, small: ModelSpec, policy: str,
              forced: str | None = None, large: str | None = None, conversation_id: int | None = None,
              message_id: int | None = None, on_event: Callable[[EngineEvent], None] | None = None,
              stream_cascade: bool = False) -> JobHandle:
        """Answer ``messages`` through the router; returns a handle with the usual events.

        The large tier is resolved before the handle is returned, so a bad configuration raises here. With
        ``stream_cascade`` the small model's ``cascade`` answer streams as it is written, and an escalation first
        sends :class:`~inference.events.Retracted` (for consumers that can take text back, such as the desktop);
        otherwise the cascade's small answer arrives in one piece once it is kept.

        Raises:
            RouterError: the policy is unknown, or the large tier is needed and none is configured.
        """
        if policy not in POLICIES:
            raise RouterError(f"Unknown router policy {policy!r}: use one of {', '.join(POLICIES)}.")
        if forced not in (None, "small", "large"):
            raise RouterError(f"Unknown tier {forced!r}: use small or large.")
        tier = self.large_tier(large) if (forced == "large" or (policy != "off" and forced != "small")) else None
        msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
        handle = JobHandle("route", on_event)
        turn = _RoutedTurn(self, handle, msgs, options, small, tier, policy, forced, conversation_id, message_id,
                           stream_cascade)
        threading.Thread(target=turn.run, name=f"ember-route-{handle.id}", daemon=True).start()
        return handle


# The policies the router learns for (each with its shipped models in inference.route_weights).
LEARNED_POLICIES = ("auto", "cascade")


def _has_probe(signals: Mapping[str, float]) -> bool:
    """Whether ``signals`` were measured with the small model's hidden-state probe (its shipped model differs)."""
    return signals.get("hidden_probe") is not None


def _why(model: ScoreModel, signals: Mapping[str, float]) -> list[tuple[str, float]]:
    """The two signals that pushed ``model``'s score of ``signals`` most (largest push towards escalating first)."""
    return model.contributions(signals)[:2]


def _last_user(messages: Sequence[Message]) -> str:
    for m in reversed(messages):
        if m["role"] == "user":
            return m["content"]
    return ""


class _RoutedTurn:
    """One routed reply, run on its own thread; everything ends in exactly one Finished or Failed event."""

    def __init__(self, router: Router, handle: JobHandle, msgs: list[dict[str, str]], options: SamplingOptions,
                 small: ModelSpec, large: LargeTier | None, policy: str, forced: str | None,
                 conversation_id: int | None, message_id: int | None, stream_cascade: bool = False) -> None:
        self.r, self.h, self.msgs, self.options = router, handle, msgs, options
        self.small, self.large, self.policy, self.forced = small, large, policy, forced
        self.conversation_id, self.message_id = conversation_id, message_id
        self.stream_cascade = stream_cascade
        self.streamed = False

    def run(self) -> None:
        self.h.started = time.perf_counter()
        try:
            text, stats, decision, model = self._route()
            self._record(decision)
            stats = dataclasses.replace(stats, router=decision.stats(model=model))
            self.h.emit(Finished(result=ChatResult(text, stats), stats=stats))
        except EmberError as exc:
            self.h.emit(Failed(exc))
        except Exception as exc:  # a bug: keep the traceback
            log.exception("routed turn %s failed", self.h.id)
            self.h.emit(Failed(exc))

    def _record(self, decision: RouteDecision) -> None:
        """Store the decision; a failed write is logged, never turned into a failed reply (the answer is done)."""
        try:
            self.r.store.record(policy=decision.policy, tier=decision.tier, score=decision.score,
                                threshold=decision.threshold, signals=decision.signals,
                                decision_ms=decision.decision_ms, conversation_id=self.conversation_id,
                                message_id=self.message_id, forced=decision.forced, escalated=decision.escalated,
                                small_model=self.small.name, large_target=self.large.target if self.large else None,
                                error=decision.error)
        except StorageError as exc:
            log.warning("routing decision of turn %s not stored: %s", self.h.id, exc)

    # -- deciding ----------------------------------------------------------------------------------------------

    def _route(self) -> tuple[str, GenerationStats, RouteDecision, str]:
        if self.forced is not None:
            decision = RouteDecision("forced", self.forced, None, None, {}, 0.0, forced=True)
            if self.forced == "small":
                return (*self._run_small(), decision, self.small.name)
            return self._answer_large(decision, small_answer=None)
        if self.policy == "off":
            decision = RouteDecision("off", "small", None, None, {}, 0.0)
            return (*self._run_small(), decision, self.small.name)
        engine = self.r.core.engine
        engine.load(self.small).wait()  # a cold load is not part of the decision's latency
        t0 = time.perf_counter()
        query = _last_user(self.msgs)
        hidden = self.r.hidden_probe(self.small)
        inputs = hidden.inputs if hidden else ()
        if self.policy == "auto":
            threshold = self.r.threshold("auto")
            made: list[RouteDecision] = []

            def keep(g: Probe | None) -> bool:
                # on the engine's thread, between the glimpse and the answer it may start in the same sequence
                hp = hidden.logit_of(g.hidden, g.hidden_next) if hidden is not None and g is not None else None
                signals = route_signals(query, g.steps if g else None, hidden_probe=hp)
                model, learned = self.r.score_model("auto", signals)
                score = model.score(signals)
                # the prefill is reused by the answer; the hidden state's token, evaluated on its own, is not
                ms = (time.perf_counter() - t0) * 1000 - ((g.prompt_ms - g.hidden_ms) if g else 0.0)
                escalate = score >= threshold and not self.h.cancelled  # a stopped glimpse says nothing
                made.append(RouteDecision("auto", "large" if escalate else "small", score, threshold, signals, ms,
                                          escalated=escalate, why=_why(model, signals), learned=learned))
                return not escalate

            routed: RoutedSmall = self._follow(lambda cb: engine.glimpse(
                self.msgs, self.options, model=self.small, n_tokens=self.r.core.settings.router.glimpse_tokens,
                hidden=inputs, keep=keep, on_event=cb))
            decision = made[0]
            if routed.answer is not None:
                return routed.answer.text, routed.answer.stats, decision, self.small.name
            return self._answer_large(decision, small_answer=None)
        # cascade: the small model answers first (streamed only if the consumer can take it back), then its
        # confidence decides
        routed = self._follow(lambda cb: engine.probe_reply(self.msgs, self.options, model=self.small,
                                                             hidden=inputs, stream=self.stream_cascade, on_event=cb))
        p = routed.probe
        assert p is not None
        t1 = time.perf_counter()
        n = self.r.core.settings.router.glimpse_tokens
        hp = hidden.logit_of(p.hidden, p.hidden_next) if hidden is not None else None
        samples = self.r.core.settings.router.agreement_samples
        if not route_weights.uses_agreement(route_weights.shipped_model("cascade", probe=hp is not None)):
            samples = 0  # the score does not weigh them: no need to pay for them
        agreed = (agreement.sample_agreement(engine, self.msgs, self.options, self.small, routed.opening,
                                             samples=samples)
                  if samples and p.finish != "cancelled" and p.tokens else None)
        signals = route_signals(query, p.steps[:n], p.steps, hidden_probe=hp,
                                agreement=agreed.features if agreed else None)
        model, learned = self.r.score_model("cascade", signals)
        score = model.score(signals)
        threshold = self.r.threshold("cascade")
        escalate = score >= threshold and p.finish != "cancelled"
        decision = RouteDecision("cascade", "large" if escalate else "small", score, threshold, signals,
                                 (time.perf_counter() - t1) * 1000, escalated=escalate, why=_why(model, signals),
                                 learned=learned)
        small_answer = (p.text, _probe_stats(p, t0, routed.dropped))
        if not escalate:
            if not self.stream_cascade:
                self._emit_text(p.text)
            return (*small_answer, decision, self.small.name)
        if self.streamed:
            self.h.emit(Retracted("The small model was unsure of its answer; the large tier answers instead."))
            self.streamed = False
        return self._answer_large(decision, small_answer=small_answer)

    # -- answering ---------------------------------------------------------------------------------------------

    def _emit_text(self, text: str) -> None:
        if text:
            self.streamed = True
            self.h.emit(TokenText(text))

    def _forward(self, event: EngineEvent, inner: list[JobHandle]) -> None:
        if isinstance(event, (TokenText, LoadProgress)):
            if isinstance(event, TokenText):
                self.streamed = True
            self.h.emit(event)
        if self.h.cancelled and inner:
            inner[0].cancel()

    def _follow(self, start: Callable[[Callable[[EngineEvent], None]], JobHandle]) -> Any:
        inner: list[JobHandle] = []
        inner.append(start(lambda e: self._forward(e, inner)))
        while True:
            try:
                return inner[0].wait(0.1)
            except TimeoutError:
                if self.h.cancelled:
                    inner[0].cancel()

    def _run_small(self) -> tuple[str, GenerationStats]:
        res = self._follow(lambda cb: self.r.core.engine.chat(self.msgs, self.options, model=self.small,
                                                               on_event=cb))
        return res.text, res.stats

    def _answer_large(self, decision: RouteDecision, *, small_answer: tuple[str, GenerationStats] | None
                      ) -> tuple[str, GenerationStats, RouteDecision, str]:
        assert self.large is not None
        try:
            if self.large.spec is not None:
                spec = self.large.spec
                engine = self.r.core.engine
                engine.set_keep_alive("large", self.r.core.settings.router.large_keep_alive)
                res = self._follow(lambda cb: engine.chat(self.msgs, self.options, model=spec, on_event=cb,
                                                          slot="large"))
            else:
                assert self.large.remote is not None
                res = remote_chat(self.large.remote, self.msgs, self.options, on_text=self._emit_text,
                                  should_stop=lambda: self.h.cancelled)
            return res.text, res.stats, decision, self.large.model_name
        except EmberError as exc:
            decision.error = str(exc)
            decision.tier = "small"
            log.info("router: the large tier failed, keeping the small model's answer: %s", exc)
        note = f"[The large tier failed: {decision.error} The small model's answer follows.]\n\n"
        prefix = "\n\n" + note if self.streamed else note
        self._emit_text(prefix)
        if small_answer is not None:
            self._emit_text(small_answer[0])
            text, stats = small_answer
        else:
            text, stats = self._run_small()
        return prefix + text, stats, decision, self.small.name


def _probe_stats(p: Probe, t0: float, dropped: int) -> GenerationStats:
    n = len(p.tokens)
    total = (time.perf_counter() - t0) * 1000
    return GenerationStats(prompt_tokens=p.prompt_tokens, cached_tokens=p.reused, completion_tokens=n,
                           trimmed_messages=dropped or None,
                           ttft_ms=round(total, 2), prompt_ms=round(p.prompt_ms, 2),
                           tokens_per_s=round(n / (p.decode_ms / 1000), 2) if p.decode_ms > 0 and n else 0.0,
                           total_ms=round(total, 2), finish_reason="stop" if p.finish == "stop" else p.finish)


def api_route(core: Ember, policy: str | None, tier: str | None) -> tuple[str, str | None] | None:
    """``(policy, forced tier)`` for an API request's ``ember`` routing fields, or None to answer unrouted (no
    tier forced and the policy, from the request or the settings, is ``off``).

    Raises:
        RouterError: an unknown policy or tier.
    """
    if tier not in (None, "small", "large"):
        raise RouterError(f"Unknown tier {tier!r}: use small or large.")
    chosen = core.shared("router", Router).policy_for(None, RouteRequest(policy=policy))
    if chosen == "off" and tier is None:
        return None
    return chosen, tier
