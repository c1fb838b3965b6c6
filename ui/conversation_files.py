"""Exporting and importing conversations from the desktop: file dialogs, then the work off the GUI thread."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from storage.conversation_files import import_file, write_export
from storage.conversations import ConversationStore
from ui.background import Background

FILTERS = {"markdown": "Markdown (*.md)", "json": "Ember JSON (*.json)"}
IMPORT_FILTER = "Ember conversations (*.json *.md);;All files (*)"


class ConversationFiles(QObject):
    """Asks where to export or what to import and does it in the background.

    Signals: ``exported(path)``, ``imported(conversation_id)``, ``error(message)`` (a known error, for the window's
    message path).
    """

    exported = Signal(str)
    imported = Signal(int)
    error = Signal(str)

    def __init__(self, store: ConversationStore, background: Background, parent: QWidget) -> None:
        super().__init__(parent)
        self._store = store
        self._background = background
        self._parent = parent
        self.dialog: QFileDialog | None = None

    def ask_export(self, conversation_id: int, fmt: str) -> QFileDialog:
        """Ask for a file name (non-blocking), then export the conversation as ``fmt`` there."""
        title = self._store.get(conversation_id).title
        suffix = ".md" if fmt == "markdown" else ".json"
        stem = "".join(c if c.isalnum() or c in " -_" else "_" for c in title).strip() or "conversation"
        dialog = QFileDialog(self._parent, "Export conversation", str(Path.home() / f"{stem}{suffix}"),
                             FILTERS[fmt])
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setDefaultSuffix(suffix.lstrip("."))
        dialog.fileSelected.connect(lambda path: self.export_to(conversation_id, Path(path), fmt))
        return self._show(dialog)

    def ask_import(self) -> QFileDialog:
        """Ask for a file (non-blocking), then import it as a new conversation."""
        dialog = QFileDialog(self._parent, "Import conversation", str(Path.home()), IMPORT_FILTER)
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.fileSelected.connect(lambda path: self.import_from(Path(path)))
        return self._show(dialog)

    def export_to(self, conversation_id: int, path: Path, fmt: str) -> None:
        """Write the conversation to ``path`` off the GUI thread; ``exported`` or ``error`` follows."""
        self._background.run(lambda: str(write_export(self._store, conversation_id, path, fmt=fmt)),
                             self.exported.emit, self.error.emit)

    def import_from(self, path: Path) -> None:
        """Import ``path`` off the GUI thread; ``imported`` or ``error`` (what is wrong with the file) follows."""
        self._background.run(lambda: import_file(self._store, path).id, self.imported.emit, self.error.emit)

    def _show(self, dialog: QFileDialog) -> QFileDialog:
        dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)  # the same dialog everywhere; testable
        dialog.open()
        self.dialog = dialog
        return dialog
