"""Per-conversation system prompt (typed or picked from a preset) and sampling, with the same generated editors as
the settings dialog."""

from __future__ import annotations

from pydantic import ValidationError
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QPlainTextEdit,
                               QPushButton, QVBoxLayout, QWidget)

from app.settings import describe_validation
from inference.sampling import SamplingOptions
from storage.presets import PresetStore
from ui.presets_dialog import PresetsDialog
from ui.settings_form import SettingsForm

CUSTOM = "Custom prompt"


class ConversationSettingsDialog(QDialog):
    """Edit one conversation's system prompt and sampling; read :attr:`result_values` after ``accepted``."""

    def __init__(self, system_prompt: str, sampling: SamplingOptions, parent: QWidget | None = None, *,
                 presets: PresetStore | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("This conversation")
        self._presets = presets
        self.system_prompt = QPlainTextEdit(system_prompt)
        self.system_prompt.setFixedHeight(90)
        self.system_prompt.setPlaceholderText("No system prompt")
        self.system_prompt.setAccessibleName("System prompt")
        self.preset = QComboBox()
        self.preset.setAccessibleName("Preset")
        self.preset.setToolTip("Use a saved system prompt")
        self.save_preset_button = QPushButton("Save as preset…")
        self.save_preset_button.setToolTip("Keep this system prompt as a named preset")
        self.edit_presets_button = QPushButton("Edit presets…")
        self.edit_presets_button.setToolTip("Create, rename, change and delete presets")
        self.presets_dialog: PresetsDialog | None = None
        presets_row = QHBoxLayout()
        presets_row.addWidget(QLabel("Preset"))
        presets_row.addWidget(self.preset, 1)
        presets_row.addWidget(self.save_preset_button)
        presets_row.addWidget(self.edit_presets_button)
        for widget in (self.preset, self.save_preset_button, self.edit_presets_button):
            widget.setVisible(presets is not None)
        self.form = SettingsForm(SamplingOptions, sampling)
        self.error = QLabel()
        self.error.setObjectName("errorText")
        self.error.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 12)
        layout.setSpacing(8)
        if presets is not None:
            layout.addLayout(presets_row)
        layout.addWidget(QLabel("System prompt"))
        layout.addWidget(self.system_prompt)
        layout.addWidget(QLabel("Sampling"))
        layout.addWidget(self.form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.result_values: tuple[str, SamplingOptions] | None = None
        self.preset.activated.connect(self._preset_picked)
        self.system_prompt.textChanged.connect(self._match_preset)
        self.save_preset_button.clicked.connect(lambda: self.open_presets(new_prompt=self.system_prompt.toPlainText()))
        self.edit_presets_button.clicked.connect(lambda: self.open_presets())
        self.reload_presets()

    # -- presets -------------------------------------------------------------------------------------------------

    def reload_presets(self) -> None:
        """Fill the preset list again (after the editor changed presets) and select the one the prompt matches."""
        if self._presets is None:
            return
        self.preset.blockSignals(True)
        self.preset.clear()
        self.preset.addItem(CUSTOM, None)
        for p in self._presets.list():
            self.preset.addItem(p.name, p.prompt)
        self.preset.blockSignals(False)
        self._match_preset()

    def pick_preset(self, name: str) -> None:
        """Use the preset ``name``'s prompt as this conversation's system prompt."""
        index = self.preset.findText(name)
        if index > 0:
            self.preset.setCurrentIndex(index)
            self._preset_picked(index)

    def open_presets(self, *, new_prompt: str | None = None) -> PresetsDialog:
        """Open the presets editor (non-blocking); ``new_prompt`` starts a new preset holding that prompt."""
        assert self._presets is not None
        current = self.preset.currentText() if self.preset.currentIndex() > 0 else None
        dialog = PresetsDialog(self._presets, self, select=None if new_prompt is not None else current)
        if new_prompt is not None:
            dialog.new()
            dialog.prompt.setPlainText(new_prompt)
        dialog.changed.connect(self.reload_presets)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        self.presets_dialog = dialog
        return dialog

    def _preset_picked(self, index: int) -> None:
        prompt = self.preset.itemData(index)
        if prompt is not None:
            self.system_prompt.setPlainText(prompt)

    def _match_preset(self) -> None:
        text = self.system_prompt.toPlainText()
        index = next((i for i in range(1, self.preset.count()) if self.preset.itemData(i) == text), 0)
        self.preset.blockSignals(True)
        self.preset.setCurrentIndex(index)
        self.preset.blockSignals(False)

    def save(self) -> None:
        """Validate and close."""
        try:
            sampling = SamplingOptions.model_validate(self.form.values())
        except ValidationError as exc:
            self.error.setText(describe_validation(exc))
            self.error.show()
            return
        self.result_values = (self.system_prompt.toPlainText(), sampling)
        self.accept()
