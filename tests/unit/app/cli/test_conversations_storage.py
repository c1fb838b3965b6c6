"""``ember conversations`` when the database cannot be written or is damaged: listing and export still work on a
full disk (read-only), a damaged file is recovered by ``ember conversations recover``, and each case's message
reaches the user as one line, never a traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from app.cli.main import main
from app.core import Ember
from app.paths import Paths
from storage.conversations import ConversationStore
from storage.database import close_database, open_database

ROOT = Path(__file__).resolve().parents[4]


def _chats(*titles: str) -> Path:
    """The user's database with one two-message conversation per title."""
    core = Ember.open()
    try:
        for title in titles:
            chat = core.conversations.create(title=title)
            core.conversations.add_message(chat.id, "user", f"about {title} " + "words " * 2000)
            core.conversations.add_message(chat.id, "assistant", "an answer")
    finally:
        core.close()
    return Paths.from_env().database


# The disk takes no more bytes (the child's file-size limit): the database cannot even be opened for writing.
FULL_DISK_CLI = textwrap.dedent("""
    import resource, signal, sys
    from app.cli.main import main
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    sys.exit(main(sys.argv[1:]))
""")


def test_list_and_export_work_read_only_when_the_disk_is_full(tmp_path):
    _chats("tulips", "roses")
    for args, expect in ((["conversations", "list"], "tulips"),
                         (["conversations", "export", "1", "-", "--format", "markdown"], "# tulips")):
        done = subprocess.run([sys.executable, "-c", FULL_DISK_CLI, *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        assert expect in done.stdout
        assert "ember: Ember could not open the database: " in done.stderr
        assert "ember: reading the conversations read-only." in done.stderr
        assert "Traceback" not in done.stderr and "damaged (" not in done.stderr
    chat = subprocess.run([sys.executable, "-c", FULL_DISK_CLI, "chat", "--conversation", "1", "hello"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert chat.returncode == 1 and "Traceback" not in chat.stderr
    assert "ember: error: Ember could not open the database: " in chat.stderr
    assert "Nothing is damaged: do not move the database aside" in chat.stderr


def test_a_damaged_database_is_recovered_by_the_cli(capsys):
    path = _chats(*(f"chat {i}" for i in range(6)))
    data = bytearray(path.read_bytes())
    at = data.index(b"about chat 3 ")
    data[at - at % 4096: at - at % 4096 + 4096] = b"\x55" * 4096  # one page of messages is garbage
    path.write_bytes(bytes(data))
    capsys.readouterr()

    assert main(["conversations", "recover"]) == 0

    out, err = capsys.readouterr()
    assert "is damaged (" in err and "recovering what can still be read" in err
    assert out.startswith(f"Recovered 6 conversation(s) and ") and f"from {path} into {path}" in out
    assert f"The damaged file is kept as {path}.damaged-" in out
    kept = [p for p in path.parent.glob("ember.db.damaged-*") if not p.name.endswith(("-wal", "-shm"))]
    assert len(kept) == 1 and kept[0].read_bytes() == bytes(data)  # the damaged file, as it was
    assert main(["conversations", "list"]) == 0
    listed = capsys.readouterr().out
    assert all(f"chat {i}" in listed for i in range(6))


def test_recover_leaves_a_sound_database_alone(capsys):
    _chats("fine")
    assert main(["conversations", "recover"]) == 0
    assert "is not damaged (SQLite's integrity check passes); nothing to recover" in capsys.readouterr().out
    assert not list(Paths.from_env().home.glob("ember.db.damaged-*"))


def test_a_file_that_is_not_a_database_is_one_line_offering_recovery(capsys):
    path = Paths.from_env().ensure().database
    path.write_bytes(b"not a database at all" * 200)
    assert main(["conversations", "list"]) == 1
    err = capsys.readouterr().err
    assert err == (f"ember: error: The database {path} is damaged (file is not a database). Run `ember "
                   "conversations recover` to copy everything SQLite can still read into a new database; the "
                   "damaged file is kept beside it as ember.db.damaged-DATE, nothing is deleted.\n")
    assert main(["conversations", "recover"]) == 0
    assert "Nothing could be read from" in capsys.readouterr().out
    db = open_database(path)
    assert ConversationStore(db).list() == []
    close_database(db)
