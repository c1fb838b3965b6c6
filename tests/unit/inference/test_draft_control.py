"""The adaptive draft length: long drafts when they pay, none when they do not."""

from inference.draft_control import MAX_PROBE_BACKOFF, DraftController


def feed(ctl: DraftController, rounds: int, *, acceptance: float, draft_s: float, t1: float, slope: float) -> None:
    """Simulate rounds with a fixed acceptance pattern (deterministic: accepted = round(a * K))."""
    for _ in range(rounds):
        k = ctl.next_k() or 1
        acc = int(round(acceptance * k))
        ctl.record(drafted=k, accepted=acc, draft_s=draft_s * k, verify_s=t1 * (1 + slope * k), batch=k + 1)
        ctl.record(drafted=0, accepted=0, draft_s=0.0, verify_s=t1, batch=1)


def test_first_round_measures_a_plain_step():
    assert DraftController().next_k() == 0


def test_high_acceptance_and_cheap_verify_drafts_long():
    ctl = DraftController(max_draft=8)
    feed(ctl, 30, acceptance=1.0, draft_s=0.0, t1=0.01, slope=0.05)  # a GPU-like verify cost
    assert ctl.next_k() == 8
    assert ctl.acceptance > 0.95


def test_drafting_pauses_when_a_draft_token_costs_as_much_as_a_target_token():
    ctl = DraftController(max_draft=8, probe_every=1000)
    feed(ctl, 30, acceptance=0.9, draft_s=0.01, t1=0.01, slope=0.35)  # a same-size draft on 2 CPU cores
    assert ctl.next_k() == 0
    assert ctl.paused_rounds >= 1


def test_low_acceptance_pauses_then_probes():
    ctl = DraftController(max_draft=8, probe_every=5)
    feed(ctl, 20, acceptance=0.0, draft_s=0.0, t1=0.01, slope=0.35)
    ks = [ctl.next_k() for _ in range(5 * MAX_PROBE_BACKOFF)]
    assert ks.count(0) >= 0.75 * len(ks) and 2 in ks  # mostly paused, with a probe


def test_not_adaptive_always_drafts_the_maximum():
    ctl = DraftController(max_draft=5, adaptive=False)
    feed(ctl, 5, acceptance=0.0, draft_s=1.0, t1=0.01, slope=1.0)
    assert ctl.next_k() == 5


def test_verify_cost_interpolates_and_extrapolates():
    ctl = DraftController(prior_verify_slope=0.5)
    assert ctl.verify_cost(3) is None
    ctl.record(drafted=0, accepted=0, draft_s=0, verify_s=1.0, batch=1)
    assert ctl.verify_cost(3) == 2.0  # prior slope
    ctl.record(drafted=4, accepted=4, draft_s=0, verify_s=3.0, batch=5)
    assert ctl.verify_cost(3) == 2.0  # interpolated between 1 and 5
    assert ctl.verify_cost(9) == 5.0  # measured slope 0.5 per token


def test_a_draft_as_costly_as_the_target_is_never_tried_or_probed():
    # Before any draft is measured, the prior (draft costs 70% of a target token, CPU-like verify slope) says even
    # perfect acceptance cannot pay, so the controller neither drafts nor probes.
    ctl = DraftController(max_draft=8, prior_draft_ratio=0.7, probe_every=4)
    ctl.record(drafted=0, accepted=0, draft_s=0.0, verify_s=0.006, batch=1)
    assert not ctl.could_pay()
    assert all(ctl.next_k() == 0 for _ in range(20))
    # A cheap draft on a GPU-like verify (flat cost) is tried at once.
    gpu = DraftController(max_draft=8, prior_draft_ratio=0.1, prior_verify_slope=0.02)
    gpu.record(drafted=0, accepted=0, draft_s=0.0, verify_s=0.006, batch=1)
    assert gpu.could_pay() and gpu.next_k() > 0


def test_acceptance_is_kept_per_kind_of_proposal():
    """Long lookup matches keep drafting while short ones, rejected in new prose, pause."""
    ctl = DraftController(max_draft=8, probe_every=1000, key_priors={(2,): 0.6, (16,): 0.9})
    ctl.record(drafted=0, accepted=0, draft_s=0.0, verify_s=0.01, batch=1)
    for _ in range(20):
        for key, acc in (((16,), 4), ((2,), 0)):
            k = 4
            ctl.record(drafted=k, accepted=acc, draft_s=0.0, verify_s=0.01 * (1 + 0.6 * k), batch=k + 1, key=key)
    assert ctl.acceptance_of((16,)) > 0.9 and ctl.acceptance_of((2,)) < 0.2
    assert ctl.next_k((16,)) >= 4 and ctl.next_k((2,)) == 0
    assert ctl.acceptance_of((6,)) == ctl.acceptance  # an unseen kind without a prior: the pooled estimate
    assert "16" in ctl.stats().acceptance_by_key


def test_failed_probes_back_off():
    ctl = DraftController(max_draft=8, probe_every=4)
    ctl.record(drafted=0, accepted=0, draft_s=0.0, verify_s=0.01, batch=1)
    for _ in range(10):
        ctl.record(drafted=2, accepted=0, draft_s=0.0, verify_s=0.02, batch=3)
    gaps, since = [], 0
    for _ in range(60):
        k = ctl.next_k()
        since += 1
        if k:
            gaps.append(since)
            since = 0
            ctl.record(drafted=k, accepted=0, draft_s=0.0, verify_s=0.02, batch=k + 1)
    assert gaps[:3] == [4, 8, 16]
