"""Files in the chat without Qt or a model: reading, splitting, cutting, keyword retrieval and the context budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.services.attachments import (AttachmentError, attach, build_context, estimate_tokens, extract, sources_line, split,
                             whole_budget)
from app.settings import AttachmentSettings
from storage.attachments import AttachmentStore
from storage.conversations import ConversationStore
from storage.database import open_database
from tests.pdf_synth import write_pdf


@pytest.fixture
def stores():
    db = open_database(":memory:")
    conversations = ConversationStore(db)
    conv = conversations.create(title="files")
    return conversations, AttachmentStore(db), conv.id


def test_text_markdown_code_and_pdf_are_read(tmp_path: Path):
    (tmp_path / "a.md").write_text("# Title\n\nSome *text*.", encoding="utf-8")
    (tmp_path / "b.py").write_text("print('hi')\n", encoding="utf-8")
    write_pdf(tmp_path / "c.pdf", [["First page"], ["Second page"]])
    assert extract(tmp_path / "a.md", max_bytes=1 << 20).pages == ["# Title\n\nSome *text*."]
    assert extract(tmp_path / "b.py", max_bytes=1 << 20).kind == "text"
    pdf = extract(tmp_path / "c.pdf", max_bytes=1 << 20)
    assert pdf.kind == "pdf" and [p.strip() for p in pdf.pages] == ["First page", "Second page"]


@pytest.mark.parametrize("content, message", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    (b"caf\xe9 au lait, cr\xe8me br\xfbl\xe9e", "not UTF-8"),
    (b"%PDF-1.4\nthis is no pdf at all", "cannot be read as a PDF"),
    (b"   \n", "empty"),
])
def test_bad_files_are_refused_with_a_clear_message(tmp_path: Path, content: bytes, message: str):
    path = tmp_path / "bad.bin"
    path.write_bytes(content)
    with pytest.raises(AttachmentError, match=message):
        extract(path, max_bytes=1 << 20)


def test_missing_and_oversized_files_are_refused(tmp_path: Path):
    with pytest.raises(AttachmentError, match="does not exist"):
        extract(tmp_path / "nope.txt", max_bytes=1 << 20)
    big = tmp_path / "big.txt"
    big.write_text("x" * 2048)
    with pytest.raises(AttachmentError, match="MiB"):
        extract(big, max_bytes=1024)


def test_split_breaks_at_paragraphs_and_keeps_pages():
    pages = ["alpha " * 50 + "\n\n" + "beta " * 50, "gamma " * 30]
    parts = split(pages, 400)
    assert [p[0] for p in parts] == list(range(1, len(parts) + 1))
    assert all(len(p[2]) <= 400 for p in parts)
    assert parts[-1][1] == 2 and parts[0][1] == 1
    assert "".join(p[2] for p in parts).replace(" ", "") == "".join(pages).replace(" ", "").replace("\n", "")


def test_small_file_is_sent_whole_and_a_long_one_split_and_cut(stores, tmp_path: Path):
    _, store, cid = stores
    settings = AttachmentSettings(max_chars=10_000, chunk_chars=500)
    small = tmp_path / "notes.md"
    small.write_text("Buy eggs and flour.", encoding="utf-8")
    prepared = attach(store, cid, small, settings=settings, budget_tokens=400, embed=None)
    assert prepared.attachment.mode == "whole" and prepared.notices == []
    big = tmp_path / "big.txt"
    big.write_text("\n\n".join(f"Paragraph {i} about topic number {i}." for i in range(2000)), encoding="utf-8")
    prepared = attach(store, cid, big, settings=settings, budget_tokens=400, embed=None)
    att = prepared.attachment
    assert att.mode == "chunks" and att.chars == 10_000 and att.cut_chars == big.stat().st_size - 10_000
    assert any("was cut" in n for n in prepared.notices) and any("split into" in n for n in prepared.notices)
    chunks = [c for c in store.chunks(cid) if c.attachment_id == att.id]
    assert sum(len(c.text) for c in chunks) <= 10_000 and chunks[-1].vector is None


def test_retrieval_cites_the_matching_part_within_the_budget(stores, tmp_path: Path):
    _, store, cid = stores
    pages = [[f"Page {i} is about the weather on island {i}, with rain and sun in turns."] * 6 for i in range(1, 25)]
    pages[12] = ["The launch code of project Bluebird is 7342."] + pages[12][1:]
    write_pdf(tmp_path / "report.pdf", pages)
    att = attach(store, cid, tmp_path / "report.pdf", settings=AttachmentSettings(), budget_tokens=300,
                 embed=None).attachment
    assert att.mode == "chunks" and att.pages == 24
    new = store.pending(cid)
    ctx = build_context(store, cid, "What is the launch code of project Bluebird?", new=new, question_vector=None,
                        budget_tokens=300)
    assert ctx is not None and ctx.sources[0]["page"] == 13 and "7342" in ctx.text
    assert estimate_tokens(ctx.text) <= 300 + 40  # the parts fit the budget (plus the intro line)
    assert sources_line(ctx.sources[:1]).startswith("Sources: report.pdf, part ")
    assert "(page 13)" in sources_line(ctx.sources[:1])


def test_whole_budget_leaves_room_for_the_reply():
    assert whole_budget(1024, 48, AttachmentSettings()) == int((1024 - 48) * 0.5)
    assert whole_budget(1024, 4096, AttachmentSettings()) == int((1024 - 512) * 0.5)
