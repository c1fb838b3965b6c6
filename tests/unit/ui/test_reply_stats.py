"""The reply footer says why a reply ended when it did not end by itself."""

from ui.reply_stats import footer_text


def test_a_reply_cut_as_a_loop_says_so():
    text = footer_text({"completion_tokens": 96, "tokens_per_s": 101.2, "ttft_ms": 40.0,
                        "finish_reason": "repetition"})
    assert text == "96 tokens · 101.2 tok/s · first token 40 ms · stopped: repeating itself"


def test_a_reply_that_ended_by_itself_says_nothing_of_it():
    assert footer_text({"completion_tokens": 5, "finish_reason": "stop"}) == "5 tokens"
    assert footer_text({"completion_tokens": 5, "finish_reason": "length"}).endswith("length limit reached")
