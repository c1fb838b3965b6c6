"""The downloads' rows: insert, read back, state, bytes done, the queue order and restart recovery."""

import pytest

from storage.database import open_database
from storage.downloads import DownloadState, DownloadStore
from storage.errors import NotFoundError


def test_rows_round_trip_and_the_queue_order():
    store = DownloadStore(open_database(":memory:"))
    first = store.insert(repo_id="o/r", revision="c1", model_file="m.gguf", name=None,
                         files=[("m-00001.gguf", 10, "aa"), ("m-00002.gguf", 5, None)])
    second = store.insert(repo_id="o/r", revision="c1", model_file="n.gguf", name="n", files=[("n.gguf", 3, None)])
    dl = store.get(first)
    assert dl.state is DownloadState.QUEUED and dl.total == 15 and [f.idx for f in dl.files] == [1, 2]
    store.save_done(dl.files[0].id, 7)
    assert store.get(first).done == 7
    assert store.next_queued() == first
    store.set_state(first, DownloadState.RUNNING, None)
    assert store.next_queued() == second and store.find_unfinished("o/r", "m.gguf").id == first
    store.requeue_running()  # the process died while it ran
    assert store.get(first).state is DownloadState.QUEUED
    store.set_state(first, DownloadState.DONE, None)
    assert store.find_unfinished("o/r", "m.gguf") is None
    assert [d.id for d in store.list()] == [first, second]
    with pytest.raises(NotFoundError, match="no download 99"):
        store.get(99)
