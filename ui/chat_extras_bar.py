"""The row above the message box: attach files, pick the conversation's MCP servers, and the files waiting to
be sent (chips with a remove button)."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QMimeData, QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QMenu, QToolButton, QWidget

from storage.attachments import Attachment

FILE_FILTER = ("Text, Markdown, code and PDF (*.txt *.md *.markdown *.rst *.pdf *.py *.js *.ts *.json *.yaml *.yml "
               "*.toml *.c *.h *.cpp *.rs *.go *.java *.sh *.html *.css *.csv *.xml *.sql);;All files (*)")


class ChatExtrasBar(QWidget):
    """Signals: ``filesChosen(paths)``, ``removeRequested(attachment_id)``, ``serverToggled(name, on)``."""

    filesChosen = Signal(list)
    removeRequested = Signal(int)
    serverToggled = Signal(str, bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.attach_button = QToolButton(text="Attach…")
        self.attach_button.setAutoRaise(True)
        self.attach_button.setToolTip("Attach text, Markdown, code or PDF files (or drop or paste them)")
        self.attach_button.setAccessibleName("Attach files")
        self.attach_button.clicked.connect(self.choose_files)
        self.tools_button = QToolButton(text="Tools")
        self.tools_button.setAutoRaise(True)
        self.tools_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.tools_button.setAccessibleName("MCP tools for this conversation")
        self.tools_menu = QMenu(self.tools_button)
        self.tools_button.setMenu(self.tools_menu)
        self.status = QLabel()
        self.status.setObjectName("hint")
        self._chips = QHBoxLayout()
        self._chips.setSpacing(4)
        self.chips: dict[int, QWidget] = {}
        layout = QHBoxLayout(self)
        layout.setContentsMargins(16, 4, 16, 0)
        layout.setSpacing(6)
        layout.addWidget(self.attach_button)
        layout.addWidget(self.tools_button)
        layout.addLayout(self._chips)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.set_servers([], [], {})

    def choose_files(self) -> None:
        """Ask for files to attach (non-blocking dialog)."""
        dialog = QFileDialog(self, "Attach files", "", FILE_FILTER)
        dialog.setFileMode(QFileDialog.FileMode.ExistingFiles)
        dialog.filesSelected.connect(lambda files: self.filesChosen.emit(list(files)))
        dialog.open()

    def set_servers(self, servers: list[str], enabled: list[str], tools: dict[str, list[str]],
                    failed: dict[str, str] | None = None) -> None:
        """The declared servers as checkable entries; each lists its tools (or why it failed) in its tip."""
        self.tools_menu.clear()
        failed = failed or {}
        if not servers:
            none = QAction("No MCP servers: add them in Settings > Tools", self.tools_menu)
            none.setEnabled(False)
            self.tools_menu.addAction(none)
        for name in servers:
            action = QAction(name, self.tools_menu)
            action.setCheckable(True)
            action.setChecked(name in enabled)
            if name in failed:
                action.setToolTip(failed[name])
                action.setText(f"{name} (failed to start)")
            elif name in tools:
                action.setToolTip(", ".join(tools[name]) or "no tools")
                action.setText(f"{name} ({len(tools[name])} tools)")
            elif name in enabled:
                action.setText(f"{name} (starting…)")
            action.toggled.connect(lambda on, n=name: self.serverToggled.emit(n, on))
            self.tools_menu.addAction(action)
        self.tools_menu.setToolTipsVisible(True)
        active = [n for n in enabled if n in tools]
        self.tools_button.setText(f"Tools: {', '.join(active)}" if active else "Tools")
        self.tools_button.setToolTip("MCP servers this conversation may use; the model asks before each call")

    def set_pending(self, attachments: list[Attachment]) -> None:
        """Show the files that go with the next message."""
        for chip in self.chips.values():
            self._chips.removeWidget(chip)
            chip.deleteLater()
        self.chips = {}
        for att in attachments:
            chip = QToolButton(text=f"{att.name}  ✕")
            chip.setObjectName("attachmentChip")
            pages = f", {att.pages} pages" if att.kind == "pdf" else ""
            how = "sent whole" if att.mode == "whole" else "split: the relevant parts are sent"
            chip.setToolTip(f"{att.name} ({att.chars:,} characters{pages}; {how}). Click to remove.")
            chip.setAccessibleName(f"Remove attachment {att.name}")
            chip.clicked.connect(lambda _=False, i=att.id: self.removeRequested.emit(i))
            self._chips.addWidget(chip)
            self.chips[att.id] = chip

    def set_reading(self, name: str) -> None:
        """Say which file is being read ("" hides it)."""
        self.status.setText(f"Reading {name}…" if name else "")


class FileDrops(QObject):
    """Files dropped onto a widget (the conversation view): ``filesDropped(paths)``."""

    filesDropped = Signal(list)

    def __init__(self, widget: QWidget) -> None:
        super().__init__(widget)
        widget.setAcceptDrops(True)
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
            if _files(event.mimeData()):
                event.acceptProposedAction()
                return True
        elif event.type() == QEvent.Type.Drop:
            files = _files(event.mimeData())
            if files:
                event.acceptProposedAction()
                self.filesDropped.emit(files)
                return True
        return super().eventFilter(watched, event)


def _files(mime: QMimeData) -> list[str]:
    if not mime.hasUrls():
        return []
    return [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
