"""Speculative decoding inside the engine: which drafter a model spec asks for, loading it, running replies.

Owned by the engine's worker thread, like the target model. A draft model gets its own context with the target's
context length (its KV cache must hold the whole conversation to draft well; at draft sizes that is small) and
the target's threads and GPU offload; it is checked for vocabulary compatibility before it is used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generator, Literal, Sequence

from inference.draft_compat import check_compatible, read_vocab
from inference.draft_control import DraftController
from inference.drafters import LOOKUP_PRIORS, Drafter, LookupDrafter, ModelDrafter
from inference.events import GenerationStats
from inference.llama_model import ContextParams, LlamaModel, ShouldStop
from inference.offload import plan_for_file
from inference.sampling import SamplingOptions
from inference.speculative import speculative_steps
from inference.steps import Request, drive

if TYPE_CHECKING:
    from inference.kv_state import StateCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpeculativeConfig:
    """How a model drafts: prompt lookup, or a draft model file.

    Args:
        mode: ``"lookup"`` or ``"draft"``.
        draft_path: the draft GGUF (``mode="draft"``).
        draft_name: its name, for messages.
        adaptive: adapt the draft length and pause drafting where it does not pay.
        max_draft: the longest draft.
    """

    mode: Literal["lookup", "draft"]
    draft_path: Path | None = None
    draft_name: str | None = None
    adaptive: bool = True
    max_draft: int = 8

    def __post_init__(self) -> None:
        if self.mode not in ("lookup", "draft"):
            raise ValueError(f"unknown speculative mode {self.mode!r}")
        if self.mode == "draft" and self.draft_path is None:
            raise ValueError("a draft model needs draft_path")


class SpeculativeRuntime:
    """The drafter of the loaded target, and the controller whose cost measurements carry over between replies."""

    def __init__(self) -> None:
        self.config: SpeculativeConfig | None = None
        self._drafter: Drafter | None = None
        self._controller: DraftController | None = None

    @property
    def active(self) -> bool:
        """True when replies are generated speculatively."""
        return self._drafter is not None

    @property
    def pays(self) -> bool:
        """Whether drafting could beat plain decoding on what the controller has measured (before any measurement:
        yes). When it cannot, replies decode plainly: the speculative loop would only add its own overhead."""
        return self._controller is None or not self._controller.adaptive or self._controller.could_pay()

    @property
    def draft_model(self) -> LlamaModel | None:
        """The draft model, when one is loaded (prompt lookup has none)."""
        return getattr(self._drafter, "model", None)

    def prepare(self, config: SpeculativeConfig | None, target: LlamaModel, *,
                progress: Callable[[float], bool] | None = None) -> None:
        """Set up the drafter ``config`` asks for (a no-op when it is already set up).

        Raises:
            DraftIncompatibleError: the draft model's vocabulary does not match the target's.
            ModelLoadError, LoadCancelled: the draft model could not be loaded.
        """
        if config == self.config and (config is None or self._drafter is not None):
            return
        self.close()
        if config is None:
            return
        if config.mode == "lookup":
            drafter: Drafter = LookupDrafter()
        else:
            assert config.draft_path is not None
            name = config.draft_name or Path(config.draft_path).stem
            check_compatible(read_vocab(target.path, name=target.path.stem),
                             read_vocab(config.draft_path, name=name))
            params = params_for_draft(target.params, target.n_ctx)
            if target.params.n_gpu_layers != 0:
                # The target is loaded: the draft gets only the GPU room that remains, never the target's layers.
                plan = plan_for_file(Path(config.draft_path), n_ctx=params.n_ctx, n_batch=params.n_batch,
                                     threads=target.n_threads)
                if plan is not None:
                    params = replace(params, n_gpu_layers=plan.target_gpu_layers)
                    log.info("draft offload plan: %s", plan.summary())
            draft_model = LlamaModel(config.draft_path, params, progress=progress)
            drafter = ModelDrafter(draft_model)
            log.info("draft model %s loaded for %s: n_ctx=%d", name, target.path.name, draft_model.n_ctx)
        self._drafter = drafter
        self._controller = new_controller(config.draft_path, target.path, max_draft=config.max_draft,
                                          adaptive=config.adaptive)
        self.config = config

    def steps(self, model: LlamaModel, prompt: Sequence[int], options: SamplingOptions, *,
              should_stop: ShouldStop, on_text: Callable[[str], None], started: float | None = None,
              grammar: str | None = None, states: "StateCache | None" = None, keep: int = 4
              ) -> Generator[Request, Any, GenerationStats]:
        """One reply with the prepared drafter, as scheduler requests (see :func:`speculative_steps`)."""
        assert self._drafter is not None and self._controller is not None
        return (yield from speculative_steps(model, self._drafter, prompt, options, should_stop=should_stop,
                                             on_text=on_text, started=started, controller=self._controller,
                                             grammar=grammar, states=states, keep=keep))

    def generate(self, model: LlamaModel, prompt: Sequence[int], options: SamplingOptions, *,
                 should_stop: ShouldStop, on_text: Callable[[str], None],
                 started: float | None = None) -> GenerationStats:
        """One reply with the prepared drafter, alone on ``model``'s selected sequence."""
        return drive(model, self.steps(model, prompt, options, should_stop=should_stop, on_text=on_text,
                                       started=started))

    def close(self) -> None:
        """Free the drafter (and its model)."""
        if self._drafter is not None:
            self._drafter.close()
        self._drafter = self._controller = None
        self.config = None


def params_for_draft(target: ContextParams, n_ctx: int) -> ContextParams:
    """Context parameters of a draft model for a target loaded with ``target`` and ``n_ctx`` tokens."""
    return replace(target, n_ctx=n_ctx)


def new_controller(draft_path: Path | str | None, target_path: Path | str, *, max_draft: int = 8,
                   adaptive: bool = True) -> DraftController:
    """The draft-length controller for a draft model (``draft_path``) or prompt lookup (None) on a target:
    priced with :func:`draft_cost_ratio`, and for lookup with :data:`~inference.drafters.LOOKUP_PRIORS`."""
    return DraftController(max_draft=max_draft, adaptive=adaptive,
                           prior_draft_ratio=draft_cost_ratio(draft_path, target_path),
                           key_priors=LOOKUP_PRIORS if draft_path is None else None)


def draft_cost_ratio(draft_path: Path | str | None, target_path: Path | str) -> float:
    """A first guess at a drafted token's cost relative to a target token: the ratio of the files' sizes
    (decoding reads every weight once per token); 0 for prompt lookup (no draft model)."""
    if draft_path is None:
        return 0.0
    try:
        return min(1.0, Path(draft_path).stat().st_size / max(Path(target_path).stat().st_size, 1))
    except OSError:
        return 0.5
