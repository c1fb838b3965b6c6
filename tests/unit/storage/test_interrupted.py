"""A reply killed mid-stream does not stay ``streaming`` forever: the next start marks it ``interrupted`` (text
kept), while replies that a live process (this one or another Ember) is still writing are left alone."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from storage.conversation_files import export_markdown, stats_summary
from storage.conversations import ConversationStore, StreamingMessage
from storage.database import close_database, open_database
from storage.interrupted import writer_alive, writer_tag

ROOT = Path(__file__).resolve().parents[3]

# A process that streams a reply and then waits for the test (or is killed with -9 in the middle of it).
STREAMER = textwrap.dedent("""
    import os, signal, sys, time
    from storage.conversations import ConversationStore, StreamingMessage
    from storage.database import open_database

    store = ConversationStore(open_database(sys.argv[1]))
    chat = store.create(title="chat")
    store.add_message(chat.id, "user", "tell me a story")
    reply = StreamingMessage(store, chat.id, model="m", flush_interval=0)
    reply.append("Once upon a time")
    print(reply.message.id, flush=True)
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.stdin.readline()  # stays alive, reply streaming, until the test says
""")


def _streamer(path: Path, mode: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-c", STREAMER, str(path), mode], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def test_a_reply_killed_mid_stream_is_interrupted_on_the_next_start(tmp_path):
    path = tmp_path / "ember.db"
    proc, message_id = _streamer(path, "kill")
    with proc:
        assert proc.wait(60) != 0  # killed by SIGKILL
    store = ConversationStore(open_database(path))
    reply = store.message(message_id)
    assert reply.stats == {"finish_reason": "interrupted"}
    assert reply.content == "Once upon a time"  # the text written so far is kept
    assert "*interrupted: Ember stopped before the reply ended*" in export_markdown(store, reply.conversation_id)
    close_database(store.database)


def test_a_reply_another_live_process_streams_is_left_alone_until_it_ends(tmp_path):
    path = tmp_path / "ember.db"
    proc, message_id = _streamer(path, "wait")
    with proc:
        try:
            store = ConversationStore(open_database(path))  # e.g. `ember conversations list` beside the desktop
            assert store.message(message_id).stats["finish_reason"] == "streaming"
            close_database(store.database)
        finally:
            proc.kill()
            proc.wait(60)
    store = ConversationStore(open_database(path))
    assert store.message(message_id).stats["finish_reason"] == "interrupted"
    close_database(store.database)


def test_this_process_s_own_streaming_reply_is_not_marked_by_a_second_open(tmp_path):
    path = tmp_path / "ember.db"
    store = ConversationStore(open_database(path))
    chat = store.create(title="chat")
    reply = StreamingMessage(store, chat.id, model="m", flush_interval=0)
    reply.append("still coming")
    again = open_database(path)
    assert ConversationStore(again).message(reply.message.id).stats["finish_reason"] == "streaming"
    close_database(again)
    assert reply.finish({"finish_reason": "stop"}).stats == {"finish_reason": "stop"}
    close_database(store.database)


def test_writer_tags_name_live_processes_only():
    assert writer_alive(writer_tag())
    assert not writer_alive(None) and not writer_alive("nonsense") and not writer_alive("0:")
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert not writer_alive(f"{int(done.stdout)}:1")  # ended (and, were the pid reused, started at another time)


def test_an_interrupted_reply_says_so_in_its_summary():
    assert stats_summary({"finish_reason": "interrupted"}) == "interrupted: Ember stopped before the reply ended"
    assert stats_summary({"finish_reason": "stop"}) == ""  # unchanged: a plain reply has no summary


def test_the_window_footer_says_a_reply_was_interrupted():
    from ui.reply_stats import footer_text  # a plain function of ui/ (no widgets): what the message footer shows

    assert footer_text({"finish_reason": "interrupted"}) == "interrupted: Ember stopped before the reply ended"
