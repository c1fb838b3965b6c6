"""Per-conversation system prompt and sampling, with the same generated editors as the settings dialog."""

from __future__ import annotations

from pydantic import ValidationError
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from app.settings import describe_validation
from inference.sampling import SamplingOptions
from ui.settings_form import SettingsForm


class ConversationSettingsDialog(QDialog):
    """Edit one conversation's system prompt and sampling; read :attr:`result_values` after ``accepted``."""

    def __init__(self, system_prompt: str, sampling: SamplingOptions, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("This conversation")
        self.system_prompt = QPlainTextEdit(system_prompt)
        self.system_prompt.setFixedHeight(90)
        self.system_prompt.setPlaceholderText("No system prompt")
        self.form = SettingsForm(SamplingOptions, sampling)
        self.error = QLabel()
        self.error.setObjectName("errorText")
        self.error.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("System prompt"))
        layout.addWidget(self.system_prompt)
        layout.addWidget(QLabel("Sampling"))
        layout.addWidget(self.form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.result_values: tuple[str, SamplingOptions] | None = None

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
