import hashlib
import shutil
import threading
import time
from collections import namedtuple
from pathlib import Path

import pytest
from model_repos import GATED, GATED_FILE, SPLIT, TINY, TINY_FILE, model_bytes

from models.downloads import PARTIAL_DIR, DownloadManager, DownloadStopped
from storage.downloads import DownloadState
from models.errors import ChecksumError, DiskSpaceError, DownloadError, HubAccessError
from models.hub import TOKEN_SECRET, HubClient
from models.library import Library
from models.quant import pick_model


@pytest.fixture
def library_dir(tmp_path: Path) -> Path:
    return tmp_path / "library"


def manager(db, client, library_dir, **kw) -> DownloadManager:
    kw.setdefault("chunk_size", 1 << 18)
    return DownloadManager(db, Library(db), client, library_dir=library_dir, sleep=lambda s: None, **kw)


def queue(mgr: DownloadManager, client: HubClient, repo_id: str = TINY, **pick):
    files = client.files(repo_id)
    return mgr.enqueue(repo_id, pick_model(files.models, **pick), revision=files.commit)


def partials(library_dir: Path) -> list[Path]:
    return sorted((library_dir / PARTIAL_DIR).glob("*")) if (library_dir / PARTIAL_DIR).exists() else []


def library_files(library_dir: Path) -> list[Path]:
    return sorted(p for p in library_dir.rglob("*.gguf") if PARTIAL_DIR not in p.parts)


def test_download_verifies_moves_into_the_library_and_catalogues(db, client, hub_repos, library_dir):
    mgr = manager(db, client, library_dir)
    dl = queue(mgr, client)
    seen = []
    model = mgr.run(dl.id, on_progress=seen.append)
    data = hub_repos.repos[TINY].files[TINY_FILE]
    assert model.path.read_bytes() == data and model.path.parent.parent == library_dir
    assert model.name == "tiny.q4-k-m" and model.repo_id == TINY and model.quantization == "Q4_K_M"
    assert model.sha256 == hashlib.sha256(data).hexdigest() and model.vocab_fingerprint
    assert mgr.get(dl.id).state is DownloadState.DONE and partials(library_dir) == []
    assert seen[-1].state is DownloadState.DONE and seen[-1].done == seen[-1].total == len(data)
    assert any(p.rate > 0 for p in seen)
    assert hub_repos.served[TINY_FILE] == len(data)


def test_split_model_downloads_every_shard(db, client, hub_repos, library_dir):
    mgr = manager(db, client, library_dir)
    model = mgr.run(queue(mgr, client, file=SPLIT).id)
    assert [p.name for p in model.files] == ["tiny.Q8_0-00001-of-00002.gguf", "tiny.Q8_0-00002-of-00002.gguf"]
    assert model.size == sum(len(b) for p, b in hub_repos.repos[TINY].files.items() if "Q8_0" in p)
    assert model.name == "tiny.q8-0"


def test_dropped_connections_resume_with_range_requests(db, client, hub_repos, library_dir):
    size = len(hub_repos.repos[TINY].files[TINY_FILE])
    hub_repos.drops[TINY_FILE] = [1 << 20, 1 << 20]  # two drops, each after 1 MiB
    mgr = manager(db, client, library_dir)
    model = mgr.run(queue(mgr, client).id)
    assert model.path.read_bytes() == hub_repos.repos[TINY].files[TINY_FILE]
    gets = hub_repos.file_gets(TINY_FILE)
    assert gets[0] is None and gets[1] == f"bytes={1 << 20}-" and gets[2] == f"bytes={2 << 20}-"
    deadline = time.monotonic() + 5  # the server counts a chunk just after the client may already have it
    while hub_repos.served[TINY_FILE] < size and time.monotonic() < deadline:
        time.sleep(0.01)
    assert hub_repos.served[TINY_FILE] == size  # no byte fetched twice


def test_connection_that_keeps_failing_gives_a_failed_state_and_keeps_the_partial(db, client, hub_repos,
                                                                                    library_dir):
    hub_repos.drops[TINY_FILE] = [1 << 20] + [0] * 10
    mgr = manager(db, client, library_dir, retries=2)
    dl = queue(mgr, client)
    with pytest.raises(DownloadError, match="failed 3 times in a row.*run the same command again to resume"):
        mgr.run(dl.id)
    assert mgr.get(dl.id).state is DownloadState.FAILED and "resume" in mgr.get(dl.id).error
    assert library_files(library_dir) == []
    assert [p.stat().st_size for p in partials(library_dir)] == [1 << 20]
    # Later the network is back: the same pull resumes from 1 MiB.
    hub_repos.drops.clear()
    dl = queue(mgr, client)
    mgr.run(dl.id)
    assert hub_repos.file_gets(TINY_FILE)[-1] == f"bytes={1 << 20}-"


def test_restart_resumes_from_the_partial_file(db, client, hub_repos, library_dir):
    """A process that dies mid-download (simulated: stopped with a partial file and a 'running' row)."""
    hub_repos.drops[TINY_FILE] = [1 << 20] + [0] * 10
    mgr = manager(db, client, library_dir, retries=0)
    dl = queue(mgr, client)
    with pytest.raises(DownloadError):
        mgr.run(dl.id)
    db.execute("UPDATE downloads SET state = 'running' WHERE id = ?", [dl.id])  # as if killed while running
    hub_repos.drops.clear()
    served_before = hub_repos.served[TINY_FILE]
    restarted = manager(db, HubClient(endpoint=hub_repos.endpoint), library_dir)
    assert restarted.get(dl.id).state is DownloadState.QUEUED
    assert queue(restarted, client).id == dl.id  # the same pull finds the unfinished download
    restarted.run(dl.id)
    size = len(hub_repos.repos[TINY].files[TINY_FILE])
    assert hub_repos.served[TINY_FILE] - served_before == size - (1 << 20)


def test_checksum_mismatch_is_refused_and_leaves_nothing(db, client, hub_repos, library_dir):
    hub_repos.repos[TINY].wrong_sha.add(TINY_FILE)
    mgr = manager(db, client, library_dir)
    dl = queue(mgr, client)
    with pytest.raises(ChecksumError, match="damaged.*removed.*run the same command again"):
        mgr.run(dl.id)
    assert library_files(library_dir) == [] and partials(library_dir) == []
    assert mgr.get(dl.id).state is DownloadState.FAILED
    assert Library(db).list() == []


def test_gated_repo_fails_before_writing_anything(db, client, library_dir):
    mgr = manager(db, client, library_dir)
    dl = queue(mgr, client, GATED)
    with pytest.raises(HubAccessError, match="ember models login"):
        mgr.run(dl.id)
    assert partials(library_dir) == [] and library_files(library_dir) == []
    assert mgr.get(dl.id).state is DownloadState.FAILED


def test_gated_repo_with_the_token(db, hub_repos, library_dir):
    client = HubClient(endpoint=hub_repos.endpoint, token="hf_good_token")
    mgr = manager(db, client, library_dir)
    assert mgr.run(queue(mgr, client, GATED).id).path.name == GATED_FILE


def test_disk_space_is_checked_first(db, client, hub_repos, library_dir, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("shutil.disk_usage", lambda p: usage(10 << 30, 10 << 30, 1 << 20))
    mgr = manager(db, client, library_dir)
    with pytest.raises(DiskSpaceError, match=r"needs 3.0 MiB more and only 1.0 MiB are free.*ember models rm"):
        queue(mgr, client)
    assert hub_repos.file_gets(TINY_FILE) == [] and partials(library_dir) == []


def test_disk_filling_up_mid_download_removes_the_partial(db, client, hub_repos, library_dir, monkeypatch):
    import errno
    import io

    real_write = io.BufferedWriter.write
    written = {"n": 0}

    mgr = manager(db, client, library_dir)
    dl = queue(mgr, client)
    real_open = Path.open

    def fake_open(self, mode="r", *a, **kw):
        f = real_open(self, mode, *a, **kw)
        if self.suffix == ".part" and "a" in mode:
            def write(chunk):
                written["n"] += len(chunk)
                if written["n"] > 1 << 20:
                    raise OSError(errno.ENOSPC, "No space left on device")
                return real_write(f, chunk)
            f.write = write
        return f

    monkeypatch.setattr(Path, "open", fake_open)
    with pytest.raises(DiskSpaceError, match="filled up.*partial file was removed"):
        mgr.run(dl.id)
    assert partials(library_dir) == [] and library_files(library_dir) == []


def test_pause_keeps_the_partial_and_resume_continues(db, client, hub_repos, library_dir):
    hub_repos.throttle = 0.01
    mgr = manager(db, client, library_dir, chunk_size=1 << 16)
    dl = queue(mgr, client)
    paused = threading.Event()

    def on_progress(p):
        if p.done > 1 << 20 and not paused.is_set():
            paused.set()
            mgr.pause(dl.id)

    with pytest.raises(DownloadStopped):
        mgr.run(dl.id, on_progress=on_progress)
    assert mgr.get(dl.id).state is DownloadState.PAUSED
    kept = partials(library_dir)[0].stat().st_size
    assert kept > 1 << 20
    hub_repos.throttle = 0
    mgr.resume(dl.id)
    mgr.run(dl.id)
    assert hub_repos.file_gets(TINY_FILE)[-1] == f"bytes={kept}-"


def test_cancel_removes_the_partial(db, client, hub_repos, library_dir):
    hub_repos.throttle = 0.01
    mgr = manager(db, client, library_dir, chunk_size=1 << 16)
    dl = queue(mgr, client)

    def on_progress(p):
        if p.done > 1 << 19:
            mgr.cancel(dl.id)

    with pytest.raises(DownloadStopped, match="cancelled; its partial files were removed"):
        mgr.run(dl.id, on_progress=on_progress)
    assert mgr.get(dl.id).state is DownloadState.CANCELLED
    assert partials(library_dir) == [] and library_files(library_dir) == []


def test_background_queue_runs_downloads_in_order(db, client, hub_repos, library_dir):
    done = threading.Event()
    mgr = manager(db, client, library_dir,
                  on_progress=lambda p: p.state is DownloadState.DONE and p.download_id == second.id and done.set())
    first = queue(mgr, client)
    second = queue(mgr, client, file=SPLIT)
    mgr.start()
    try:
        assert done.wait(20)
    finally:
        mgr.shutdown()
    assert [mgr.get(d.id).state for d in (first, second)] == [DownloadState.DONE, DownloadState.DONE]
    assert {m.name for m in Library(db).list()} == {"tiny.q4-k-m", "tiny.q8-0"}


def test_resume_refused_for_disk_space_keeps_the_partial(db, client, hub_repos, library_dir, monkeypatch):
    """A resume the disk has no room for fails before writing and keeps what was downloaded."""
    hub_repos.drops[TINY_FILE] = [1 << 20] + [0] * 10
    mgr = manager(db, client, library_dir, retries=0)
    dl = queue(mgr, client)
    with pytest.raises(DownloadError):
        mgr.run(dl.id)
    assert [p.stat().st_size for p in partials(library_dir)] == [1 << 20]
    hub_repos.drops.clear()
    real_usage = shutil.disk_usage
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("shutil.disk_usage", lambda p: usage(10 << 30, 10 << 30, 1 << 20))
    with pytest.raises(DiskSpaceError, match="Not enough disk space.*Free some space"):
        mgr.run(dl.id)
    failed = mgr.get(dl.id)
    assert failed.state is DownloadState.FAILED and "Not enough disk space" in failed.error
    assert [p.stat().st_size for p in partials(library_dir)] == [1 << 20]
    assert mgr.bytes_on_disk(failed) == 1 << 20
    # Space freed: the retry continues from 1 MiB.
    monkeypatch.setattr("shutil.disk_usage", real_usage)
    mgr.resume(dl.id)
    mgr.run(dl.id)
    assert hub_repos.file_gets(TINY_FILE)[-1] == f"bytes={1 << 20}-"


def test_failed_new_download_of_an_installed_model_leaves_it_installed(db, client, hub_repos, library_dir):
    mgr = manager(db, client, library_dir)
    installed = mgr.run(queue(mgr, client).id)
    data = installed.path.read_bytes()
    again = queue(mgr, client)  # the same files again: a new download (the first one is done)
    hub_repos.repos[TINY].gated = True  # the Hub now refuses this client
    with pytest.raises(HubAccessError):
        mgr.run(again.id)
    mgr.cancel(again.id)
    assert installed.path.read_bytes() == data and partials(library_dir) == []
    assert Library(db).get(installed.name).path == installed.path
    # Asked for again with access: the installed file is verified in place, not fetched again.
    hub_repos.repos[TINY].gated = False
    served = hub_repos.served[TINY_FILE]
    assert mgr.run(queue(mgr, client).id).path == installed.path
    assert installed.path.read_bytes() == data and partials(library_dir) == []
    assert hub_repos.served[TINY_FILE] == served


def test_changed_file_replaces_the_installed_one_only_once_verified(db, client, hub_repos, library_dir):
    mgr = manager(db, client, library_dir, retries=0)
    installed = mgr.run(queue(mgr, client).id)
    old = installed.path.read_bytes()
    new = model_bytes(7)
    hub_repos.repos[TINY].files[TINY_FILE] = new  # the Hub's file changed (same name)
    hub_repos.drops[TINY_FILE] = [1 << 20, 0]
    again = queue(mgr, client)
    with pytest.raises(DownloadError):
        mgr.run(again.id)
    assert installed.path.read_bytes() == old  # the failed download left the installed file alone
    mgr.cancel(again.id)
    assert installed.path.read_bytes() == old and partials(library_dir) == []
    mgr.run(queue(mgr, client).id)
    assert installed.path.read_bytes() == new and partials(library_dir) == []


def test_crash_after_moving_into_the_library_re_verifies_without_fetching(db, client, hub_repos, library_dir,
                                                                         monkeypatch):
    """Killed between moving the verified files and cataloguing them (simulated): the next run finishes."""
    mgr = manager(db, client, library_dir)
    dl = queue(mgr, client)
    real_add = Library.add

    def crash(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(Library, "add", crash)
    with pytest.raises(KeyboardInterrupt):
        mgr.run(dl.id)
    assert partials(library_dir) == [] and len(library_files(library_dir)) == 1
    monkeypatch.setattr(Library, "add", real_add)
    served = hub_repos.served[TINY_FILE]
    model = mgr.run(queue(mgr, client).id)
    assert hub_repos.served[TINY_FILE] == served  # re-verified in place, nothing fetched again
    assert model.path.read_bytes() == hub_repos.repos[TINY].files[TINY_FILE]


def test_download_uses_the_hub_token_saved_after_the_manager_was_made(db, client, hub_repos, library_dir,
                                                                      memory_keyring):
    from types import SimpleNamespace

    from app.services.models import download_manager
    from storage.secrets import set_secret

    core = SimpleNamespace(db=db, library=Library(db), paths=SimpleNamespace(models=library_dir))
    mgr = download_manager(core)  # no token yet (as when the window is built)
    dl = queue(mgr, client, GATED)
    with pytest.raises(HubAccessError):
        mgr.run(dl.id)
    set_secret(TOKEN_SECRET, "hf_good_token")  # saved later in Settings
    mgr.resume(dl.id)
    assert mgr.run(dl.id).path.name == GATED_FILE


@pytest.mark.allow_log_warnings
def test_a_bug_while_downloading_is_recorded_as_the_apology_and_propagates(db, client, library_dir, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the transfer")

    monkeypatch.setattr("models.downloads.fetch_verified", broken)
    mgr = manager(db, client, library_dir)
    dl = queue(mgr, client)
    with pytest.raises(RuntimeError, match="a bug in the transfer"):
        mgr.run(dl.id)
    failed = mgr.get(dl.id)
    assert failed.state is DownloadState.FAILED
    assert failed.error.startswith("Something went wrong inside Ember (RuntimeError). This is a bug")
