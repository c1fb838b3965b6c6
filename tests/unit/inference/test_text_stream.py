from inference.text_stream import TextStream


def feed(stream, pieces):
    out = "".join(stream.push(p) for p in pieces)
    return out + stream.flush()


def test_plain_text_passes_through():
    assert feed(TextStream(), [b"Hel", b"lo"]) == "Hello"


def test_split_utf8_is_held_until_complete():
    s = TextStream()
    euro = "€".encode()
    assert s.push(euro[:1]) == ""
    assert s.push(euro[1:]) == "€"


def test_stop_string_across_tokens_is_cut():
    s = TextStream(["</end>"])
    assert s.push(b"answer </e") == "answer "
    assert s.push(b"nd> more") == ""
    assert s.stopped and s.flush() == ""


def test_partial_stop_released_when_it_does_not_complete():
    s = TextStream(["STOP"])
    assert s.push(b"ST") == ""
    assert s.push(b"ART") == "START"


def test_earliest_stop_wins():
    s = TextStream(["b", "a"])
    assert s.push(b"xxab") == "xx" and s.stopped


def test_incomplete_bytes_at_end_become_replacement_char():
    s = TextStream()
    s.push("é".encode()[:1])
    assert s.flush() == "\ufffd"
