"""Split reply text into prose and fenced code blocks, and highlight code with Pygments (HTML for Qt labels)."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

_FENCE = re.compile(r"^[ ]{0,3}(`{3,}|~{3,})[ \t]*([^\s`]*)[^\n]*$", re.MULTILINE)


@dataclass(frozen=True)
class Segment:
    """A run of Markdown prose, or one fenced code block (``closed`` is False while it still streams)."""

    kind: str  # "text" | "code"
    text: str
    language: str = ""
    closed: bool = True


def split_segments(text: str) -> list[Segment]:
    """Prose and fenced code blocks of ``text``, in order; an unterminated fence runs to the end."""
    segments: list[Segment] = []
    pos = 0
    while True:
        opening = _FENCE.search(text, pos)
        if opening is None:
            break
        fence = opening.group(1)
        if opening.start() > pos:
            _add_text(segments, text[pos:opening.start()])
        body_start = min(opening.end() + 1, len(text))
        closing = re.compile(r"^[ ]{0,3}" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}[ \t]*$",
                             re.MULTILINE).search(text, body_start)
        if closing is None:
            segments.append(Segment("code", text[body_start:], opening.group(2), closed=False))
            return segments
        segments.append(Segment("code", text[body_start:closing.start()].rstrip("\n"), opening.group(2)))
        pos = min(closing.end() + 1, len(text))
    if pos < len(text):
        _add_text(segments, text[pos:])
    return segments


def _add_text(segments: list[Segment], chunk: str) -> None:
    if chunk.strip():
        segments.append(Segment("text", chunk.strip("\n")))


def code_html(code: str, language: str, *, dark: bool) -> str:
    """``code`` as HTML with inline colours (Qt's rich text does not read CSS classes), wrapped in a ``<pre>``."""
    try:
        lexer = get_lexer_by_name(language) if language else None
    except ClassNotFound:
        lexer = None
    if lexer is None or not code.strip():
        body = html.escape(code)
    else:
        formatter = HtmlFormatter(style="monokai" if dark else "friendly", noclasses=True, nowrap=True)
        body = highlight(code, lexer, formatter).rstrip("\n")
    return f'<pre style="white-space: pre-wrap; margin: 0">{body}</pre>'
