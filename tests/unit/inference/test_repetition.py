"""The loop detector cuts verbatim loops where the rule says, and lets ordinary repetition through."""

import pytest

from inference.repetition import MAX_PERIOD, MIN_TOKENS, LoopDetector, first_loop

WORDS = list(range(1000, 1400))  # distinct token ids standing for words


def clause(n: int, start: int = 0) -> list[int]:
    return WORDS[start:start + n]


def test_a_clause_repeated_is_cut_at_the_end_of_its_third_copy():
    prefix = clause(15, start=200)  # an answer that starts normally, then loops
    loop = clause(25)
    tokens = prefix + loop * 8
    d = LoopDetector()
    fired = [i for i, t in enumerate(tokens) if d.push(t)]
    assert fired[0] == len(prefix) + 3 * 25 - 1
    assert d.fired_at == fired[0] and d.period == 25 and d.span == 75
    assert fired == list(range(fired[0], len(tokens)))  # it stays fired
    assert first_loop(tokens) == fired[0]


@pytest.mark.parametrize("period", [1, 2, 5, 21])
def test_short_spans_must_repeat_for_min_tokens(period):
    span = clause(period, start=50)
    tokens = (span * (MIN_TOKENS // period + 2))[:MIN_TOKENS + 10]
    assert first_loop(tokens) == MIN_TOKENS - 1  # the first 64-token stretch that repeats with this period
    assert first_loop(tokens[:MIN_TOKENS - 1]) is None


def test_the_longest_period_is_found_and_longer_ones_are_not():
    assert first_loop(clause(MAX_PERIOD) * 3) == 3 * MAX_PERIOD - 1
    assert first_loop(clause(MAX_PERIOD) * 3, max_period=MAX_PERIOD - 1) is None
    assert first_loop(clause(MAX_PERIOD + 1) * 4) is None  # a paragraph loop is past the bound (DRY's job)


def test_the_loop_must_be_back_to_back_and_verbatim():
    loop = clause(20)
    almost = loop[:-1] + [7]  # one token differs in every copy
    assert first_loop(loop + almost + loop + almost + loop) is None
    spaced = loop + clause(3, start=300) + loop + clause(3, start=310) + loop + clause(3, start=320) + loop
    assert first_loop(spaced) is None  # a refrain between verses
    assert first_loop(loop * 2 + clause(30, start=100) + loop * 2) is None  # two repeats, twice


def test_lists_and_code_with_similar_lines_are_not_loops():
    comma, space, newline = 11, 12, 13
    counting = [t for n in range(200) for t in (2000 + n, comma, space)]  # "1, 2, 3, ..., 200"
    assert first_loop(counting) is None
    # print(a) / print(b) / ...: the same shape on every line, never the same line
    printing, lparen, rparen = 21, 22, 23
    code = [t for n in range(100) for t in (printing, lparen, 3000 + n, rparen, newline)]
    assert first_loop(code) is None
    # a numbered list whose items start alike: "1. The cat\n2. The dog\n..."
    listed = [t for n in range(60) for t in (4000 + n, 31, 32, 5000 + n, newline)]
    assert first_loop(listed) is None


def test_ordinary_repetition_goes_through():
    ha = 40
    assert first_loop([ha] * 20) is None  # "ha ha ha ..." twenty times
    assert first_loop(clause(10) + [50, 50] + clause(10, start=20)) is None  # "very very"
    hooray = clause(6, start=60)
    assert first_loop(hooray * 3) is None  # "Hip hip hooray!" three times
    row = clause(12, start=80)  # "[0, 0, 0, 0, 0],\n": a small zero matrix, five identical rows
    assert first_loop(row * 5) is None
    refrain = clause(15, start=120)
    assert first_loop(refrain * 4) is None  # a 15-token line four times (60 tokens) is still allowed


def test_a_long_reply_keeps_the_work_and_memory_bounded():
    d = LoopDetector()
    for t in range(20_000):
        assert not d.push(t)
    assert len(d._recent) <= 2 * MAX_PERIOD
    assert d.count == 20_000
    for t in clause(30) * 3:  # and a loop after all that is still found
        d.push(t)
    assert d.fired_at == 20_000 + 89


def test_thresholds_are_checked():
    with pytest.raises(ValueError):
        LoopDetector(min_repeats=1)
    with pytest.raises(ValueError):
        LoopDetector(max_period=0)
