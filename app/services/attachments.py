"""Files in the chat, without Qt: reading text and PDF files, splitting long ones into parts, embedding the parts
with the engine, and choosing what each question sends to the model within the context budget.

Small files go into the prompt whole. Longer ones are split into parts of about ``chunk_chars`` characters, each
embedded with the engine's embeddings (:meth:`inference.engine.EngineService.embed`) and indexed with FTS5; each
question then retrieves the parts that score best on keywords (BM25) and meaning (cosine of the vectors) combined,
as many as fit the budget, and the reply names them (``Sources: notes.pdf, part 3``).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from app.settings import AttachmentSettings
from storage.attachments import Attachment, AttachmentStore, Chunk
from storage.errors import EmberError

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 3.0  # a cautious estimate (English text runs about 4 characters a token)
EMBED_BATCH = 16
KEYWORD_WEIGHT = 0.6  # the rest goes to the vector score
TOP_PARTS = 4


class AttachmentError(EmberError, ValueError):
    """A file that cannot be attached: missing, too large, binary, or a PDF without readable text."""


@dataclass(frozen=True)
class Extracted:
    """A file's text, page by page (one page for text files)."""

    name: str
    kind: str  # text / pdf
    pages: list[str]

    @property
    def text(self) -> str:
        """All pages, separated by blank lines."""
        return "\n\n".join(p for p in self.pages if p)


@dataclass(frozen=True)
class Prepared:
    """A stored attachment and what the user should be told about it (split, cut)."""

    attachment: Attachment
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Context:
    """What a question sends with it: the file text, and which files and parts it came from."""

    text: str
    sources: list[dict[str, Any]]


def estimate_tokens(text: str) -> int:
    """A cautious token count for ``text`` (more than the model's tokenizer gives for ordinary text)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def whole_budget(n_ctx: int, max_tokens: int, settings: AttachmentSettings) -> int:
    """Tokens of file text one message may send: a share of the context left after the reply's room."""
    return max(64, int((n_ctx - min(max_tokens, n_ctx // 2)) * settings.whole_share))


# -- reading -------------------------------------------------------------------------------------------------------


def extract(path: Path, *, max_bytes: int) -> Extracted:
    """The text of a text, Markdown, code or PDF file.

    Raises:
        AttachmentError: the file is missing, larger than ``max_bytes``, binary, or a PDF with no readable text.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise AttachmentError(f"{path.name} is {size / 2**20:.1f} MiB; files up to {max_bytes / 2**20:.0f} "
                                  "MiB can be attached (Settings > Attachments).")
        with path.open("rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise AttachmentError(f"{path.name} cannot be attached: the file does not exist.") from None
    except IsADirectoryError:
        raise AttachmentError(f"{path.name} is a folder; attach the files in it instead.") from None
    except OSError as exc:
        raise AttachmentError(f"{path.name} cannot be read: {exc.strerror or exc}.") from None
    if path.suffix.lower() == ".pdf" or head.startswith(b"%PDF"):
        return Extracted(path.name, "pdf", _pdf_pages(path))
    data = path.read_bytes()
    return Extracted(path.name, "text", [_decode(path.name, data)])


def _pdf_pages(path: Path) -> list[str]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            raise AttachmentError(f"{path.name} is an encrypted PDF; Ember cannot read it.")
        pages = [_tidy(page.extract_text() or "") for page in reader.pages]
    except AttachmentError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise AttachmentError(f"{path.name} cannot be read as a PDF ({exc or type(exc).__name__}).") from None
    if not any(p.strip() for p in pages):
        raise AttachmentError(f"{path.name} has no text Ember can read (a scanned PDF has only images).")
    return pages


def _decode(name: str, data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return _tidy(data.decode("utf-16"))
        except UnicodeDecodeError:
            pass
    if b"\x00" in data[:8192]:
        raise AttachmentError(f"{name} looks like a binary file; attach text, Markdown, code or PDF files.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise AttachmentError(f"{name} is not UTF-8 text; attach text, Markdown, code or PDF files.") from None
    if not text.strip():
        raise AttachmentError(f"{name} is empty.")
    return _tidy(text)


def _tidy(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


# -- splitting -----------------------------------------------------------------------------------------------------


def split(pages: Sequence[str], chunk_chars: int) -> list[tuple[int, int | None, str]]:
    """Parts ``(part, page, text)`` of about ``chunk_chars`` characters, broken at paragraphs where possible;
    ``page`` is the 1-based page a part starts on (None for a one-page text file)."""
    parts: list[tuple[int, int | None, str]] = []
    multi = len(pages) > 1
    for page_no, page in enumerate(pages, 1):
        buf = ""
        for para in _pieces(page, chunk_chars):
            if buf and len(buf) + len(para) + 2 > chunk_chars:
                parts.append((len(parts) + 1, page_no if multi else None, buf))
                buf = ""
            buf = f"{buf}\n\n{para}" if buf else para
        if buf.strip():
            parts.append((len(parts) + 1, page_no if multi else None, buf))
    return parts


def _pieces(text: str, limit: int) -> list[str]:
    """Paragraphs, with any longer than ``limit`` broken at sentence ends or spaces."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        para = para.strip()
        while len(para) > limit:
            cut = max(para.rfind(". ", 0, limit), para.rfind("\n", 0, limit), para.rfind(" ", 0, limit))
            cut = cut + 1 if cut > limit // 3 else limit
            out.append(para[:cut].strip())
            para = para[cut:].strip()
        if para:
            out.append(para)
    return out


# -- attaching -----------------------------------------------------------------------------------------------------


def attach(store: AttachmentStore, conversation_id: int, path: Path, *, settings: AttachmentSettings,
           budget_tokens: int, embed: Callable[[list[str]], list[list[float]]] | None) -> Prepared:
    """Read ``path`` and store it with the conversation (not yet sent). A file over ``budget_tokens`` is split
    and its parts embedded with ``embed`` (None, or an embedding failure: keyword search only). Runs off the GUI
    thread: reading and embedding take time.

    Raises:
        AttachmentError: the file cannot be used (nothing is stored).
    """
    extracted = extract(path, max_bytes=settings.max_file_mb << 20)
    pages, cut = _keep(extracted.pages, settings.max_chars)
    text = "\n\n".join(p for p in pages if p)
    notices = []
    if cut:
        notices.append(f"{extracted.name} was cut: Ember keeps its first {len(text):,} characters and left out "
                       f"the last {cut:,} (Settings > Attachments > Max chars).")
    if estimate_tokens(text) <= budget_tokens:
        att = store.add(conversation_id, name=extracted.name, kind=extracted.kind, pages=len(extracted.pages),
                        text=text, mode="whole", cut_chars=cut)
        return Prepared(att, notices)
    parts = split(pages, settings.chunk_chars)
    vectors: list[list[float] | None] = [None] * len(parts)
    if embed is not None:
        try:
            done: list[list[float]] = []
            for i in range(0, len(parts), EMBED_BATCH):
                done.extend(embed([p[2] for p in parts[i:i + EMBED_BATCH]]))
            vectors = list(done)
        except EmberError as exc:
            log.info("embedding %s failed, keyword search only: %s", extracted.name, exc)
    notices.append(f"{extracted.name} is too long to send whole (about {estimate_tokens(text):,} tokens; "
                   f"{budget_tokens:,} fit): it was split into {len(parts)} parts, and each question sends the "
                   "parts most relevant to it.")
    att = store.add(conversation_id, name=extracted.name, kind=extracted.kind, pages=len(extracted.pages),
                    text=text, mode="chunks", cut_chars=cut,
                    chunks=[(part, page, t, vectors[i]) for i, (part, page, t) in enumerate(parts)])
    return Prepared(att, notices)


def _keep(pages: list[str], max_chars: int) -> tuple[list[str], int]:
    """The pages cut to ``max_chars`` characters in all, and how many characters were left out."""
    total = sum(len(p) for p in pages)
    if total <= max_chars:
        return pages, 0
    kept, room = [], max_chars
    for page in pages:
        if room <= 0:
            break
        kept.append(page[:room])
        room -= len(page)
    return kept, total - sum(len(p) for p in kept)


# -- asking --------------------------------------------------------------------------------------------------------


def rank(store: AttachmentStore, conversation_id: int, question: str,
         question_vector: Sequence[float] | None) -> list[tuple[float, Chunk]]:
    """The conversation's parts, best first, by keyword and vector scores combined (each scaled to 0..1)."""
    chunks = store.chunks(conversation_id)
    if not chunks:
        return []
    keyword = store.keyword_scores(conversation_id, question, limit=max(50, len(chunks)))
    top_kw = max(keyword.values(), default=0.0)
    cosine: dict[int, float] = {}
    if question_vector is not None:
        for c in chunks:
            if c.vector is not None and len(c.vector) == len(question_vector):
                cosine[c.id] = sum(a * b for a, b in zip(c.vector, question_vector))
    lo, hi = min(cosine.values(), default=0.0), max(cosine.values(), default=0.0)
    scored = []
    for c in chunks:
        kw = keyword.get(c.id, 0.0) / top_kw if top_kw > 0 else 0.0
        vec = (cosine[c.id] - lo) / (hi - lo) if c.id in cosine and hi > lo else 0.0
        weight = KEYWORD_WEIGHT if keyword and cosine else (1.0 if keyword else 0.0)
        scored.append((weight * kw + (1 - weight) * vec, c))
    scored.sort(key=lambda s: (-s[0], s[1].id))
    return scored


def build_context(store: AttachmentStore, conversation_id: int, question: str, *, new: Sequence[Attachment],
                  question_vector: Sequence[float] | None, budget_tokens: int) -> Context | None:
    """The file text for one question: the whole text of the small files sent with it, then the best parts of
    the conversation's split files, as many as fit ``budget_tokens``. None when there is nothing to send."""
    blocks: list[str] = []
    sources: list[dict[str, Any]] = []
    used = 0
    for att in new:
        if att.mode != "whole":
            continue
        block = f'<file name="{att.name}">\n{store.text(att.id)}\n</file>'
        blocks.append(block)
        used += estimate_tokens(block)
        sources.append({"file": att.name})
    names = {a.id: a.name for a in store.for_conversation(conversation_id)}
    for score, chunk in rank(store, conversation_id, question, question_vector)[:TOP_PARTS]:
        where = f' page="{chunk.page}"' if chunk.page else ""
        block = f'<file name="{names[chunk.attachment_id]}" part="{chunk.part}"{where}>\n{chunk.text}\n</file>'
        if used + estimate_tokens(block) > budget_tokens:
            break
        blocks.append(block)
        used += estimate_tokens(block)
        sources.append({"file": names[chunk.attachment_id], "part": chunk.part, "page": chunk.page,
                        "score": round(score, 4)})
    if not blocks:
        return None
    intro = "The user attached these files (or the parts of them that matter for this message):"
    return Context(intro + "\n\n" + "\n\n".join(blocks), sources)


def sources_line(sources: Sequence[dict[str, Any]]) -> str:
    """``Sources: notes.pdf, part 3 (page 13); todo.md`` for a reply's files and parts ("" when none)."""
    items = []
    for s in sources:
        item = s["file"]
        if s.get("part"):
            item += f", part {s['part']}" + (f" (page {s['page']})" if s.get("page") else "")
        items.append(item)
    return "Sources: " + "; ".join(items) if items else ""
