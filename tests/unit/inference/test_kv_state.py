from inference.kv_state import StateCache, common_prefix

A = list(range(100))
B = list(range(1000, 1100))


def test_best_match_is_the_longest_shared_prefix():
    cache = StateCache(None, min_tokens=10)
    cache.put("m", A, b"state-a")
    cache.put("m", B, b"state-b")
    saved, shared = cache.best("m", A[:80] + [7, 7, 7])
    assert saved.tokens == tuple(A) and saved.data == b"state-a" and shared == 80
    assert cache.best("other-model", A) is None  # a different model or context setting never matches
    assert cache.best("m", A[:5]) is None  # too short a match to be worth a restore
    assert cache.best("m", [5] + A) is None


def test_a_longer_state_of_the_same_conversation_replaces_the_shorter():
    cache = StateCache(None, min_tokens=10)
    cache.put("m", A[:50], b"short")
    cache.put("m", A, b"long")
    assert len(cache) == 1 and cache.best("m", A)[0].data == b"long"


def test_ram_budget_spills_to_disk_and_disk_budget_evicts(tmp_path):
    cache = StateCache(tmp_path, ram_budget=15, disk_budget=25, min_tokens=10)
    cache.put("m", A, b"a" * 10)
    cache.put("m", B, b"b" * 10)  # 20 bytes in RAM > 15: the oldest (A) goes to disk
    assert cache.ram_bytes == 10 and cache.disk_bytes == 10 and len(list(tmp_path.glob("*.kvstate"))) == 1
    assert cache.best("m", A)[0].data == b"a" * 10  # read back from disk
    c = list(range(5000, 5100))
    cache.put("m", c, b"c" * 10)
    cache.put("m", [9] * 20, b"d" * 10)
    assert cache.disk_bytes <= 25 and cache.ram_bytes <= 15
    assert len(list(tmp_path.glob("*.kvstate"))) * 10 == cache.disk_bytes


def test_states_on_disk_survive_a_restart(tmp_path):
    first = StateCache(tmp_path, ram_budget=0, disk_budget=1 << 20, min_tokens=10)
    first.put("m", A, b"x" * 64)
    assert first.ram_bytes == 0 and first.disk_bytes == 64
    again = StateCache(tmp_path, ram_budget=0, disk_budget=1 << 20, min_tokens=10)
    saved, shared = again.best("m", A + [1, 2])
    assert saved.data == b"x" * 64 and shared == 100


def test_garbage_in_the_folder_is_removed(tmp_path):
    (tmp_path / "junk.kvstate").write_bytes(b"nope")
    cache = StateCache(tmp_path, min_tokens=10)
    assert len(cache) == 0 and not (tmp_path / "junk.kvstate").exists()


def test_short_sequences_are_not_saved():
    cache = StateCache(None, min_tokens=64)
    cache.put("m", A[:10], b"x")
    assert len(cache) == 0


def test_common_prefix():
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2 and common_prefix([], [1]) == 0


def test_best_reads_nothing_unless_the_state_beats_what_is_already_reused(tmp_path, monkeypatch):
    cache = StateCache(tmp_path, ram_budget=0, disk_budget=1 << 20, min_tokens=10)
    cache.put("m", A, b"x" * 64)  # on disk only
    assert cache.ram_bytes == 0 and cache.disk_bytes == 64
    reads: list[object] = []
    real_read = cache._read
    monkeypatch.setattr(cache, "_read", lambda e: reads.append(e) or real_read(e))
    prompt = A + [1, 2]
    assert cache.best("m", prompt, longer_than=100) is None  # 100 tokens shared: no better than what is reused
    assert cache.best("m", prompt, longer_than=150) is None
    assert reads == [], "a state that does not beat the reused prefix must not be read from disk"
    saved, shared = cache.best("m", prompt, longer_than=99)
    assert saved.data == b"x" * 64 and shared == 100 and len(reads) == 1


def test_discard_forgets_one_state_in_ram_and_on_disk(tmp_path):
    cache = StateCache(tmp_path, ram_budget=0, disk_budget=1 << 20, min_tokens=10)
    cache.put("m", A, b"a" * 16)
    cache.put("m", B, b"b" * 16)
    assert cache.discard("m", A) and not cache.discard("m", A) and not cache.discard("other", B)
    assert cache.best("m", A) is None and cache.best("m", B)[0].data == b"b" * 16
    assert len(list(tmp_path.glob("*.kvstate"))) == 1
