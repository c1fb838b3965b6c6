"""One file's transfer and check on its own: resumed from a partial file, verified, left in place when installed."""

import hashlib

import pytest
from model_repos import TINY, TINY_FILE

from models.errors import ChecksumError
from models.transfer import FileToFetch, TransferOptions, fetch_verified


def target(tmp_path, client, *, sha256=None) -> FileToFetch:
    files = client.files(TINY)
    f = next(f for m in files.models for f in m.files if f.path == TINY_FILE)
    return FileToFetch(repo_id=TINY, revision=files.commit, path=f.path, size=f.size, sha256=sha256 or f.sha256,
                       part=tmp_path / ".partial" / "1-1.part", dest=tmp_path / "lib" / f.path, label="1")


def fetch(client, f: FileToFetch) -> tuple[list[int], list[int]]:
    started, saved = [], []
    fetch_verified(client, f, TransferOptions(chunk_size=1 << 16, sleep=lambda s: None), check_stop=lambda: None,
                   on_start=started.append, on_bytes=lambda n: None, save_done=saved.append)
    return started, saved


def test_resumes_from_the_partial_file_and_verifies(tmp_path, client, hub_repos):
    data = hub_repos.repos[TINY].files[TINY_FILE]
    f = target(tmp_path, client)
    f.part.parent.mkdir(parents=True)
    f.part.write_bytes(data[:1000])
    started, saved = fetch(client, f)
    assert started == [1000] and saved[-1] == len(data) and f.part.read_bytes() == data


def test_a_verified_file_in_the_library_stays_where_it_is(tmp_path, client, hub_repos):
    data = hub_repos.repos[TINY].files[TINY_FILE]
    f = target(tmp_path, client, sha256=hashlib.sha256(data).hexdigest())
    f.dest.parent.mkdir(parents=True)
    f.dest.write_bytes(data)
    assert fetch(client, f) == ([len(data)], [len(data)]) and not f.part.exists()


def test_a_wrong_checksum_removes_the_partial_file(tmp_path, client):
    f = target(tmp_path, client, sha256="0" * 64)
    with pytest.raises(ChecksumError, match="is damaged"):
        fetch(client, f)
    assert not f.part.exists()
