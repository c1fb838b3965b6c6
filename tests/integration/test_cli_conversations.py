"""``ember presets``, ``ember chat --preset`` and ``ember conversations export|import`` end to end, in subprocesses,
with the real starter model and a real SQLite file."""

import json
import sqlite3
from pathlib import Path

from tests.integration.test_cli import run_ember


def _rows(home: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(home / "ember.db")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_a_preset_is_the_system_prompt_of_a_chat(ember_home):
    out = run_ember("presets", "save", "Brief", "Answer in one short sentence.")
    assert out.returncode == 0, out.stderr
    assert run_ember("presets", "list").stdout.strip() == "Brief: Answer in one short sentence."
    out = run_ember("chat", "--preset", "Brief", "--max-tokens", "8", "Name a colour.")
    assert out.returncode == 0, out.stderr
    settings = json.loads(_rows(ember_home, "SELECT settings FROM conversations")[0][0])
    assert settings["system_prompt"] == "Answer in one short sentence."
    missing = run_ember("chat", "--preset", "Nope", "Hi")
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.startswith("ember: error: There is no preset called 'Nope' (presets: Brief)")
    assert len(_rows(ember_home, "SELECT id FROM conversations")) == 1, "nothing stored for a refused chat"


def test_export_then_import_round_trip_and_a_malformed_file_is_refused(ember_home, tmp_path):
    out = run_ember("chat", "--max-tokens", "8", "Name a fruit.")
    assert out.returncode == 0, out.stderr
    for name in ("chat.json", "chat.md"):
        out = run_ember("conversations", "export", "1", str(tmp_path / name))
        assert out.returncode == 0 and out.stderr.startswith("wrote "), out.stderr
    doc = json.loads((tmp_path / "chat.json").read_text(encoding="utf-8"))
    assert [m["role"] for m in doc["messages"]] == ["user", "assistant"]
    assert doc["messages"][1]["stats"]["completion_tokens"] > 0
    assert "### You" in (tmp_path / "chat.md").read_text(encoding="utf-8")
    for name, conv_id in (("chat.json", 2), ("chat.md", 3)):
        out = run_ember("conversations", "import", str(tmp_path / name))
        assert out.returncode == 0, out.stderr
        assert f"as conversation {conv_id} (2 messages)" in out.stdout
    contents = _rows(ember_home, "SELECT conversation_id, role, content FROM messages ORDER BY id")
    by_conv = {c: [(r, t) for cid, r, t in contents if cid == c] for c in (1, 2, 3)}
    assert by_conv[1] == by_conv[2] == by_conv[3]
    listed = json.loads(run_ember("conversations", "list", "--json").stdout)
    assert sorted(r["id"] for r in listed) == [1, 2, 3]

    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "ember-conversation", "version": 1, "conversation": {"title": "x"}, '
                   '"messages": [{"id": 1, "role": "wizard", "content": "hi"}]}', encoding="utf-8")
    out = run_ember("conversations", "import", str(bad))
    assert out.returncode == 1 and "messages[0].role must be one of" in out.stderr
    assert len(_rows(ember_home, "SELECT id FROM conversations")) == 3, "nothing written"
