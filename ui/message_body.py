"""A message's text rendered as Markdown prose and highlighted code blocks, updated incrementally."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from ui.code_block import CodeBlock
from ui.markdown import Segment, split_segments


class MessageBody(QWidget):
    """Renders Markdown text; :meth:`set_text` touches only the segments that changed (the streaming tail)."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(6)
        self._segments: list[Segment] = []
        self._widgets: list[QWidget] = []
        self._text = ""
        self.renders = 0
        self.set_text(text)

    @property
    def text(self) -> str:
        """The Markdown source shown."""
        return self._text

    def code_blocks(self) -> list[CodeBlock]:
        """The code block widgets, in order."""
        return [w for w in self._widgets if isinstance(w, CodeBlock)]

    def set_text(self, text: str) -> None:
        """Show ``text``; unchanged segments keep their widgets."""
        if text == self._text and self._widgets:
            return
        self._text = text
        self.renders += 1
        segments = split_segments(text) or [Segment("text", "")]
        for i, seg in enumerate(segments):
            if i < len(self._segments) and self._segments[i] == seg:
                continue
            if i < len(self._widgets) and self._segments[i].kind == seg.kind:
                self._update(self._widgets[i], seg)
            else:
                widget = self._make(seg)
                if i < len(self._widgets):
                    old = self._widgets[i]
                    self._layout.replaceWidget(old, widget)
                    old.deleteLater()
                    self._widgets[i] = widget
                else:
                    self._layout.addWidget(widget)
                    self._widgets.append(widget)
        for old in self._widgets[len(segments):]:
            self._layout.removeWidget(old)
            old.deleteLater()
        del self._widgets[len(segments):]
        self._segments = segments

    def _make(self, seg: Segment) -> QWidget:
        if seg.kind == "code":
            return CodeBlock(seg.text, seg.language)
        label = QLabel()
        label.setTextFormat(Qt.TextFormat.MarkdownText)
        label.setWordWrap(True)
        label.setOpenExternalLinks(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        label.setText(seg.text)
        return label

    def _update(self, widget: QWidget, seg: Segment) -> None:
        if isinstance(widget, CodeBlock):
            widget.set_code(seg.text, seg.language)
        elif isinstance(widget, QLabel):
            widget.setText(seg.text)
