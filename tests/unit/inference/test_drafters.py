"""Prompt lookup: n-gram matching over the conversation, kept as an incremental index."""

from inference.drafters import LookupDrafter


def test_proposes_the_continuation_of_the_latest_earlier_occurrence():
    d = LookupDrafter(ngram_min=2, ngram_max=3)
    ctx = [1, 2, 3, 4, 5, 9, 9, 1, 2, 3, 7, 8, 0, 1, 2, 3]
    # (1, 2, 3) occurred at 0 and at 7; the latest earlier one is followed by 7, 8, 0
    assert d.propose(ctx, 3).tokens == [7, 8, 0]
    assert d.propose(ctx, 10).tokens == [7, 8, 0, 1, 2, 3]  # up to the end of the context
    assert d.propose(ctx, 1).tokens == [7]


def test_prefers_the_longest_matching_ngram():
    d = LookupDrafter(ngram_min=1, ngram_max=3)
    ctx = [5, 6, 7, 100, 8, 7, 200, 5, 6, 7]
    # 7 alone last occurred before 200; (5, 6, 7) occurred before 100
    assert d.propose(ctx, 1).tokens == [100]


def test_no_match_gives_an_empty_draft():
    d = LookupDrafter(ngram_min=2, ngram_max=4)
    assert d.propose([1, 2, 3, 4, 5], 4).tokens == []
    assert d.propose([1], 4).tokens == []
    assert d.propose([1, 2, 1, 2], 0).tokens == []


def test_incremental_index_matches_a_fresh_one():
    ctx = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6, 4, 3, 3, 8, 3, 2, 7, 9, 5, 1, 4, 1, 5]
    grown = LookupDrafter(ngram_min=1, ngram_max=4)
    for end in range(1, len(ctx) + 1):
        fresh = LookupDrafter(ngram_min=1, ngram_max=4)
        assert grown.propose(ctx[:end], 4).tokens == fresh.propose(ctx[:end], 4).tokens, end


def test_a_context_that_is_not_an_extension_rebuilds_the_index():
    d = LookupDrafter(ngram_min=2, ngram_max=2)
    assert d.propose([1, 2, 3, 1, 2], 1).tokens == [3]
    assert d.propose([7, 8, 9, 7, 8], 1).tokens == [9]  # a new conversation
    assert d.propose([7, 8, 4, 7, 8], 1).tokens == [4]  # same length, different tokens


def test_lookup_keys_a_proposal_by_how_long_its_match_is():
    from inference.drafters import LookupDrafter, match_bucket

    copied = list(range(100, 130))
    d = LookupDrafter()
    long = d.propose(copied + [7, 8] + copied[:20], 4)  # 20 tokens of the stretch found again
    assert long.tokens == copied[20:24] and long.key == (match_bucket(20),) == (16,)
    short = LookupDrafter().propose([1, 2, 3, 9, 9, 1, 2], 4)  # only "1 2" recurs
    assert short.tokens == [3, 9, 9, 1] and short.key == (2,)
