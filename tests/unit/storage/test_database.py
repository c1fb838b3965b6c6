"""One SQLite connection shared by every store and thread: used one statement at a time, closed safely."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from models.library import Library
from storage.conversations import ConversationStore
from storage.database import close_database, database_lock, open_database
from storage.routing import RoutingStore

# Readers on three threads while the main thread closes the database: before the stores shared one lock, Python's
# sqlite3 module crashed the process (a segfault in the desktop when a background job outlived the window).
CLOSE_WHILE_READING = textwrap.dedent("""
    import sys, threading, time
    from pathlib import Path
    from models.library import Library
    from storage.conversations import ConversationStore
    from storage.database import close_database, open_database

    folder = Path(sys.argv[1])
    for round_ in range(40):
        db = open_database(folder / f"ember-{round_}.db")
        library, conversations = Library(db), ConversationStore(db)
        chat = conversations.create(title="busy")
        for _ in range(30):
            conversations.add_message(chat.id, "user", "hello")
        ended = []

        def read():
            try:
                while True:
                    library.list()
                    conversations.messages(chat.id)
            except Exception as exc:
                ended.append(type(exc).__name__)

        readers = [threading.Thread(target=read) for _ in range(3)]
        for t in readers:
            t.start()
        time.sleep(0.005)
        close_database(db)
        for t in readers:
            t.join(10)
        assert ended == ["ProgrammingError"] * 3, ended
    print("closed cleanly")
""")


def test_closing_while_other_threads_read_never_crashes(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-X", "faulthandler", "-c", CLOSE_WHILE_READING, str(tmp_path)],
                          cwd=root, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "closed cleanly" in done.stdout


def test_every_store_of_a_database_shares_one_lock(tmp_path: Path) -> None:
    db = open_database(tmp_path / "ember.db")
    other = open_database(tmp_path / "other.db")
    lock = database_lock(db)
    assert database_lock(db) is lock and database_lock(other) is not lock
    stores = ConversationStore(db), Library(db), RoutingStore(db)
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    finished: list[str] = []
    workers = [threading.Thread(target=lambda s=s: (s.list(), finished.append(type(s).__name__))) for s in stores]
    for w in workers:
        w.start()
    for w in workers:
        w.join(0.2)
    assert finished == []  # every store waits for the statement in flight
    release.set()
    for w in workers:
        w.join(10)
    holder.join(10)
    assert sorted(finished) == ["ConversationStore", "Library", "RoutingStore"]
    close_database(db)
    close_database(other)
