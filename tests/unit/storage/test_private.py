"""Private by default: the database and its -wal/-shm are 0600, its folder 0700, whatever the umask; existing
files made by an older Ember lose their group and other bits when the store opens."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from storage.conversations import ConversationStore
from storage.database import close_database, open_database

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX; Windows profiles are private")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    """The loosest umask, so only Ember's own modes keep files private."""
    old = os.umask(0)
    yield
    os.umask(old)


def test_new_database_and_folder_are_private_whatever_the_umask(tmp_path, open_umask):
    path = tmp_path / "data" / "ember.db"
    store = ConversationStore(open_database(path))
    store.add_message(store.create(title="secret").id, "user", "my diary")
    assert _mode(path.parent) == 0o700
    assert _mode(path) == 0o600
    for extra in ("-wal", "-shm"):  # SQLite gives them the database file's mode
        assert _mode(Path(f"{path}{extra}")) == 0o600
    close_database(store.database)


def test_an_existing_readable_database_is_tightened_on_open(tmp_path, open_umask):
    path = tmp_path / "ember.db"
    close_database(open_database(path))
    for part in (path, Path(f"{path}-wal")):
        part.touch()
        part.chmod(0o644)
    db = open_database(path)
    assert _mode(path) == 0o600 and _mode(Path(f"{path}-wal")) == 0o600
    close_database(db)
