"""The thread controller's decisions on synthetic step times (no model, no clock)."""

from __future__ import annotations

from typing import Callable

from inference.thread_control import ThreadController, bucket


def simulate(ctrl: ThreadController, cost: Callable[[int, int], float], steps: int, *, n_tokens: int = 1,
             start: int = 0, now: list[float] | None = None) -> list[int]:
    """Run ``steps`` decodes whose time is ``cost(threads, step)``; return the thread count of each."""
    clock = now if now is not None else [0.0]
    used = []
    for i in range(start, start + steps):
        t = ctrl.threads_for(n_tokens)
        seconds = cost(t, i)
        clock[0] += seconds
        ctrl.record(n_tokens, t, seconds, clock[0])
        used.append(t)
    return used


QUIET = {2: 0.0084, 1: 0.0111}  # 119 and 90 tok/s: the starter on a quiet 2-core machine (llama-bench)
BUSY = {2: 0.0273, 1: 0.0117}  # one busy core: 36.6 and 85.7 tok/s


def test_on_a_quiet_machine_it_keeps_every_core_and_probes_rarely():
    ctrl = ThreadController(2)
    used = simulate(ctrl, lambda t, i: QUIET[t], 2000)
    assert used[:8] == [2] * 8
    assert used.count(1) / len(used) < 0.02  # probes of one thread cost under 2% of the steps
    assert ctrl.plan()["tokens"] == 2 and ctrl.switches == 0


def test_when_a_core_gets_busy_it_drops_a_thread_within_a_few_dozen_steps():
    ctrl = ThreadController(2)
    clock = [0.0]
    simulate(ctrl, lambda t, i: QUIET[t], 200, now=clock)
    used = simulate(ctrl, lambda t, i: BUSY[t], 300, start=200, now=clock)
    first_one = used.index(1)
    assert first_one <= 12  # the slow-down is seen within a window and a probe starts at once
    assert ctrl.plan()["tokens"] == 1
    assert used[40:].count(1) / len(used[40:]) > 0.95  # and it stays there, probing two now and then


def test_when_the_core_frees_up_it_takes_it_back():
    ctrl = ThreadController(2)
    clock = [0.0]
    simulate(ctrl, lambda t, i: BUSY[t], 300, now=clock)
    assert ctrl.plan()["tokens"] == 1
    used = simulate(ctrl, lambda t, i: QUIET[t], 1500, start=300, now=clock)
    assert ctrl.plan()["tokens"] == 2
    back = next(i for i in range(len(used)) if used[i:i + 50] == [2] * 50)
    assert back < 1000  # within the probe interval and its back-off


def test_each_kind_of_step_has_its_own_count():
    ctrl = ThreadController(2)
    clock = [0.0]
    # single tokens suffer from the busy core; prompt chunks (all compute, no waiting) still gain from two threads
    for i in range(400):
        simulate(ctrl, lambda t, j: BUSY[t], 1, now=clock, start=i)
        simulate(ctrl, lambda t, j: {2: 0.0030, 1: 0.0055}[t] * 128, 1, n_tokens=128, now=clock, start=i)
    assert ctrl.plan()["tokens"] == 1 and ctrl.plan()["prompt_chunks"] == 2
    assert bucket(1) == 0 and bucket(16) == 1 and bucket(128) == 2


def test_probes_that_change_nothing_come_less_often():
    ctrl = ThreadController(2, probe_every=50)
    used = simulate(ctrl, lambda t, i: QUIET[t], 3000)
    probes = [i for i in range(1, len(used)) if used[i] == 1 and used[i - 1] == 2]
    gaps = [b - a for a, b in zip(probes, probes[1:])]
    assert gaps[0] < gaps[-1] and gaps[-1] >= 8 * 50


def test_noise_does_not_make_it_flap():
    ctrl = ThreadController(2)
    jitter = lambda t, i: QUIET[t] * (1.0 + 0.25 * ((i * 7919) % 13) / 13)  # noqa: E731 - +-25% step noise
    simulate(ctrl, jitter, 3000)
    assert ctrl.switches <= 2


def test_one_core_means_one_thread():
    ctrl = ThreadController(1)
    assert simulate(ctrl, lambda t, i: 0.01, 100) == [1] * 100
