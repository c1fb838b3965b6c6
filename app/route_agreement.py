"""The cascade's agreement signal: a few short sampled continuations of the small answer's opening, run as
parallel sequences of the one engine, and how far they agree with the greedy answer.

Each sample is an ordinary chat job of the small model with a fixed seed, so the scheduler batches them into the
same decode steps and copies the prompt's KV cells from the sequence that just answered (a shared prefix): the
cost is about ``tokens`` decode steps of a batch of ``samples``, not ``samples * tokens`` single steps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Mapping, Sequence

from inference.engine import EngineService, JobHandle, ModelSpec
from inference.route_signals import OPENING_TOKENS, Features, agreement_features
from inference.sampling import SamplingOptions

SAMPLES = 4  # continuations per answer
TOKENS = OPENING_TOKENS  # tokens per continuation (as many as the greedy opening they are compared with)
SEED = 1234


@dataclass(frozen=True)
class Agreement:
    """The samples, their agreement features and what they cost (wall time, all samples together)."""

    samples: list[str]
    features: Features
    ms: float


def sample_options(options: SamplingOptions, i: int, tokens: int = TOKENS) -> SamplingOptions:
    """The options of sample ``i``: the turn's own, at temperature 1 with a fixed seed, ``tokens`` long."""
    return options.model_copy(update={"temperature": 1.0, "top_k": 40, "top_p": 0.95, "min_p": 0.05,
                                      "seed": SEED + i, "max_tokens": tokens, "stop_loops": False,
                                      "repeat_penalty": 1.0, "stop": list(options.stop)})


def sample_agreement(engine: EngineService, messages: Sequence[Mapping[str, str]], options: SamplingOptions,
                     spec: ModelSpec, opening: str, *, samples: int = SAMPLES, tokens: int = TOKENS) -> Agreement:
    """Sample ``samples`` continuations of ``tokens`` tokens for ``messages`` on ``spec`` (batched by the
    engine) and compare them with ``opening``, the greedy answer's first ``tokens`` tokens.

    Raises:
        EngineError: a sample failed (the engine's own message).
    """
    t0 = time.perf_counter()
    msgs = [dict(m) for m in messages]
    handles: list[JobHandle] = [engine.chat(msgs, sample_options(options, i, tokens), model=spec)
                                for i in range(samples)]
    texts = [h.wait().text for h in handles]
    ms = (time.perf_counter() - t0) * 1000
    return Agreement(texts, agreement_features(opening, texts), ms)
