"""The scheduler's KV-cell reservations, with a model that only counts cells (no llama.cpp): a request that fits
the context alone waits for room instead of failing, in order of arrival, interactive first; a cancelled waiter
leaves without a slot; one larger than the context runs alone."""

from __future__ import annotations

from typing import Any

from inference.engine import JobHandle
from inference.errors import EngineError
from inference.scheduler import BatchScheduler, SeqJob
from inference.steps import Acquire, Eval, Steps, prefill


class CellModel:
    """What the scheduler asks of a model: sequences with cached tokens in one pool of ``n_ctx`` cells."""

    def __init__(self, n_ctx: int = 100, n_seq: int = 5, n_batch: int = 64) -> None:
        self.n_ctx, self.n_seq, self.n_batch = n_ctx, n_seq, n_batch
        self._cache: list[list[int]] = [[] for _ in range(n_seq)]
        self.seq = 0
        self.pinned: set[int] = set()
        self.parked = False
        self.model_key = "cells"

    def select(self, seq: int) -> None:
        self.seq = seq

    def cached(self, seq: int) -> list[int]:
        return self._cache[seq]

    @property
    def tokens(self) -> list[int]:
        return self._cache[self.seq]

    def clear(self) -> None:
        self._cache[self.seq] = []

    def used(self) -> int:
        return sum(len(c) for c in self._cache)

    def decode_batch(self, items: Any) -> None:
        n = sum(len(t) for _, t, _ in items)
        if self.used() + n > self.n_ctx:
            raise EngineError(f"The context is full ({self.n_ctx} tokens): no room for {n} more tokens.")
        for seq, tokens, _ in items:
            self._cache[seq].extend(tokens)


def reply(model: CellModel, prompt_len: int, n: int, log: list[str], name: str, *, reserve: int | None = None
          ) -> Steps:
    """A job: take a sequence, read a prompt, write ``n`` tokens, free the sequence's cells at the end."""
    yield Acquire([1] * prompt_len, reserve=prompt_len + n if reserve is None else reserve)
    log.append(f"{name} starts")
    model.clear()
    yield from prefill([1] * prompt_len)
    for _ in range(n):
        yield Eval([2])
    model.clear()
    log.append(f"{name} ends")
    return name


def submit(sched: BatchScheduler, steps: Steps, results: dict, *, interactive: bool = False) -> SeqJob:
    handle = JobHandle("test")
    job = SeqJob(handle, steps, interactive=interactive,
                 on_end=lambda j, result, error: results.__setitem__(j.handle.id, error or result))
    sched.add(job)
    return job


def run(sched: BatchScheduler, rounds: int = 500) -> None:
    for _ in range(rounds):
        if not sched.busy:
            return
        sched.run_once()
    raise AssertionError("the scheduler did not finish")


def make(n_ctx: int = 100) -> tuple[BatchScheduler, CellModel]:
    model = CellModel(n_ctx=n_ctx)
    return BatchScheduler(parallel=4, prefill_chunk=16, model=lambda: model), model


def test_a_request_that_does_not_fit_beside_another_waits_for_its_cells():
    sched, model = make()
    log: list[str] = []
    results: dict = {}
    a = submit(sched, reply(model, 40, 20, log, "a"), results)
    b = submit(sched, reply(model, 40, 20, log, "b"), results)
    sched.run_once()
    assert a.state == "generating" and b.state == "waiting-for-cells" and b.slot is None
    assert [j["state"] for j in sched.snapshot()["running"]] == ["generating", "waiting-for-cells"]
    run(sched)
    assert results == {a.handle.id: "a", b.handle.id: "b"}  # both answered, none refused or cut
    assert log == ["a starts", "a ends", "b starts", "b ends"]


def test_requests_that_fit_together_run_together():
    sched, model = make()
    log: list[str] = []
    results: dict = {}
    for name in "abc":
        submit(sched, reply(model, 20, 10, log, name), results)
    run(sched)
    assert log[:3] == ["a starts", "b starts", "c starts"] and len(results) == 3


def test_cells_are_granted_in_order_of_arrival_interactive_first():
    sched, model = make()
    log: list[str] = []
    results: dict = {}
    submit(sched, reply(model, 50, 10, log, "running"), results)
    sched.run_once()
    submit(sched, reply(model, 60, 10, log, "big"), results)  # waits for the first to end
    submit(sched, reply(model, 5, 5, log, "small"), results)  # would fit now, but must not overtake "big"
    submit(sched, reply(model, 5, 5, log, "desktop"), results, interactive=True)
    run(sched)
    starts = [line for line in log if line.endswith("starts")]
    assert starts.index("desktop starts") < starts.index("big starts") < starts.index("small starts")
    assert len(results) == 4 and all(isinstance(r, str) for r in results.values())


def test_a_request_cancelled_while_it_waits_leaves_without_a_slot():
    sched, model = make()
    log: list[str] = []
    results: dict = {}
    submit(sched, reply(model, 60, 10, log, "a"), results)
    waiter = submit(sched, reply(model, 60, 10, log, "b"), results)
    sched.run_once()
    waiter.handle.cancel()
    sched.run_once()
    assert isinstance(results[waiter.handle.id], EngineError) and "cancelled" in str(results[waiter.handle.id])
    assert waiter.slot is None and "b starts" not in log
    run(sched)


def test_a_request_larger_than_the_context_runs_alone():
    sched, model = make()
    log: list[str] = []
    results: dict = {}
    submit(sched, reply(model, 10, 5, log, "small"), results)
    submit(sched, reply(model, 30, 10, log, "huge", reserve=10_000), results)
    submit(sched, reply(model, 10, 5, log, "after"), results)
    run(sched)
    assert log.index("small ends") < log.index("huge starts") < log.index("huge ends") < log.index("after starts")
