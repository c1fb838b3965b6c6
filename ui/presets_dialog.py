"""The system-prompt presets editor: a list of presets, the selected one's name and prompt, new / save / delete."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QLineEdit, QListWidget,
                               QListWidgetItem, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget)

from storage.errors import EmberError
from storage.presets import PresetStore

NAME_ROLE = Qt.ItemDataRole.UserRole


class PresetsDialog(QDialog):
    """Create, edit, rename and delete presets (changes are saved at once). Signal: ``changed()``."""

    changed = Signal()

    def __init__(self, presets: PresetStore, parent: QWidget | None = None, *, select: str | None = None) -> None:
        super().__init__(parent)
        self._presets = presets
        self.setWindowTitle("System-prompt presets")
        self.resize(720, 420)
        self.list = QListWidget()
        self.list.setAccessibleName("Presets")
        self.list.setMinimumWidth(200)
        self.name = QLineEdit()
        self.name.setAccessibleName("Preset name")
        self.name.setPlaceholderText("Name, e.g. Concise answers")
        self.prompt = QPlainTextEdit()
        self.prompt.setAccessibleName("Preset system prompt")
        self.prompt.setPlaceholderText("The system prompt this preset sets")
        self.error = QLabel()
        self.error.setObjectName("errorText")
        self.error.setWordWrap(True)
        self.error.hide()
        self.new_button = QPushButton("New")
        self.new_button.setToolTip("Start a new preset")
        self.save_button = QPushButton("Save")
        self.save_button.setObjectName("primary")
        self.save_button.setToolTip("Save this preset's name and prompt")
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Delete the selected preset")
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)

        editor = QVBoxLayout()
        editor.setSpacing(6)
        editor.addWidget(QLabel("Name"))
        editor.addWidget(self.name)
        editor.addWidget(QLabel("System prompt"))
        editor.addWidget(self.prompt, 1)
        editor.addWidget(self.error)
        row = QHBoxLayout()
        row.addWidget(self.new_button)
        row.addWidget(self.delete_button)
        row.addStretch(1)
        row.addWidget(self.save_button)
        editor.addLayout(row)
        body = QHBoxLayout()
        body.setSpacing(12)
        body.addWidget(self.list)
        body.addLayout(editor, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 12)
        layout.setSpacing(12)
        layout.addLayout(body, 1)
        layout.addWidget(close)

        self._editing: str | None = None  # the stored preset being edited (None: a new one)
        self.list.currentItemChanged.connect(self._selected)
        self.new_button.clicked.connect(self.new)
        self.save_button.clicked.connect(self.save)
        self.delete_button.clicked.connect(self.delete)
        self.refresh(select)

    def names(self) -> list[str]:
        """The presets listed, in order."""
        return [self.list.item(i).data(NAME_ROLE) for i in range(self.list.count())]

    def refresh(self, select: str | None = None) -> None:
        """Reload the list and select ``select`` (default: the first preset; none: a new one)."""
        self.list.blockSignals(True)
        self.list.clear()
        for preset in self._presets.list():
            item = QListWidgetItem(preset.name)
            item.setData(NAME_ROLE, preset.name)
            item.setToolTip(preset.prompt[:300])
            self.list.addItem(item)
        self.list.blockSignals(False)
        names = self.names()
        if select in names or (select is None and names):
            self.list.setCurrentRow(names.index(select) if select in names else 0)
        else:
            self.new()

    def new(self) -> None:
        """Clear the editor for a new preset."""
        self.list.blockSignals(True)
        self.list.setCurrentRow(-1)
        self.list.blockSignals(False)
        self._editing = None
        self.name.clear()
        self.prompt.clear()
        self.delete_button.setEnabled(False)
        self.error.hide()
        self.name.setFocus(Qt.FocusReason.OtherFocusReason)

    def save(self) -> bool:
        """Save the editor's name and prompt (renaming the preset being edited); False with the reason shown."""
        try:
            preset = self._presets.save(self.name.text(), self.prompt.toPlainText(), previous=self._editing)
        except EmberError as exc:
            self.error.setText(str(exc))
            self.error.show()
            return False
        self.refresh(preset.name)
        self.changed.emit()
        return True

    def delete(self) -> None:
        """Delete the preset being edited."""
        if self._editing is None:
            return
        try:
            self._presets.delete(self._editing)
        except EmberError as exc:
            self.error.setText(str(exc))
            self.error.show()
            return
        self.refresh()
        self.changed.emit()

    def _selected(self, item: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        if item is None:
            return
        preset = next((p for p in self._presets.list() if p.name == item.data(NAME_ROLE)), None)
        if preset is None:
            return
        self._editing = preset.name
        self.name.setText(preset.name)
        self.prompt.setPlainText(preset.prompt)
        self.delete_button.setEnabled(True)
        self.error.hide()
