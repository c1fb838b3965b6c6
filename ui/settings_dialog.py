"""The settings dialog, generated from the pydantic declaration in :mod:`app.settings` (one tab per section)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from pydantic import BaseModel, ValidationError
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QLabel, QPushButton, QScrollArea, QTabWidget,
                               QVBoxLayout, QWidget)

from app.services.autostart import UNSUPPORTED_NOTICE, autostart_supported
from app.settings import Settings, describe_validation, save_settings
from storage.errors import EmberError, user_message
from ui.secrets_panel import SecretsPanel
from ui.settings_form import SettingsForm

SECTION_TITLES = {"engine": "Engine", "chat": "Chat", "sampling": "Sampling", "api": "Local API",
                  "desktop": "Desktop", "speculative": "Speculative decoding", "router": "Router",
                  "mcp": "Tools", "attachments": "Attachments"}


class SettingsDialog(QDialog):
    """Edits every setting; Save validates against the declared bounds, writes the file and emits ``saved``.

    ``reset_learning`` (given by the window) forgets what the router learned from the user's choices; the router
    tab then offers it as a button.
    """

    saved = Signal(object)

    def __init__(self, settings: Settings, settings_path: Path, home: Path, parent: QWidget | None = None, *,
                 reset_learning: Callable[[], None] | None = None) -> None:
        super().__init__(parent)
        self._reset_learning = reset_learning
        self.setWindowTitle("Settings")
        self.resize(620, 520)
        self._path = settings_path
        self._settings = settings
        self.forms: dict[str, SettingsForm] = {}
        self.tabs = QTabWidget()
        for name, info in type(settings).model_fields.items():
            value = getattr(settings, name)
            if not isinstance(value, BaseModel):
                continue
            form = SettingsForm(type(value), value)
            self.forms[name] = form
            page = QWidget()
            box = QVBoxLayout(page)
            about = QLabel(info.description or (type(value).__doc__ or "").strip().splitlines()[0])
            about.setObjectName("hint")
            about.setWordWrap(True)
            about.setStyleSheet("font-weight: 600")
            box.addWidget(about)
            box.addWidget(form)
            if name == "desktop":
                self._autostart_note(form, box)
            if name == "router" and reset_learning is not None:
                self._reset_button(box)
            box.addStretch(1)
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setWidget(page)
            self.tabs.addTab(scroll, SECTION_TITLES.get(name, name.replace("_", " ").capitalize()))
        self.secrets = SecretsPanel(home, remote_secret=settings.router.remote_key)
        self.tabs.addTab(self.secrets, "Accounts and tokens")
        self.error = QLabel()
        self.error.setObjectName("errorText")
        self.error.setWordWrap(True)
        self.error.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)

    def edited(self) -> Settings:
        """The settings as edited.

        Raises:
            ValidationError: a value breaks its declared bounds.
        """
        data = self._settings.model_dump()
        for name, form in self.forms.items():
            data[name] = {**data[name], **form.values()}
        return Settings.model_validate(data)

    def save(self) -> bool:
        """Validate, write ``settings.json`` and the secrets; on a problem show it and keep the dialog open."""
        try:
            settings = self.edited()
            save_settings(settings, self._path)
            self.secrets.save()
        except ValidationError as exc:
            return self._fail(f"Not saved: {describe_validation(exc)}")
        except (EmberError, OSError) as exc:
            return self._fail(f"Not saved: {exc}")
        self._settings = settings
        self.saved.emit(settings)
        self.accept()
        return True

    def _autostart_note(self, form: SettingsForm, box: QVBoxLayout) -> None:
        """Where start on login is not implemented, say so and leave the box unchecked."""
        self.autostart_note = QLabel(UNSUPPORTED_NOTICE)
        self.autostart_note.setObjectName("hint")
        self.autostart_note.setWordWrap(True)
        box.addWidget(self.autostart_note)
        supported = autostart_supported()
        self.autostart_note.setVisible(not supported)
        editor = form.editors.get("start_on_login")
        if editor is not None and not supported:
            editor.setEnabled(False)

    def _reset_button(self, box: QVBoxLayout) -> None:
        self.reset_learning_button = QPushButton("Reset what the router learned")
        self.reset_learning_button.setToolTip("Score turns with the shipped weights again, forgetting what your "
                                              "choices taught the router (the choices themselves stay stored)")
        self.reset_learning_button.clicked.connect(self.reset_learning)
        self.reset_note = QLabel()
        self.reset_note.setObjectName("hint")
        self.reset_note.setWordWrap(True)
        self.reset_note.hide()
        box.addWidget(self.reset_learning_button)
        box.addWidget(self.reset_note)

    def reset_learning(self) -> bool:
        """Forget what the router learned (at once; not part of Save); the note under the button says how it went."""
        assert self._reset_learning is not None
        try:
            self._reset_learning()
        except EmberError as exc:
            self.reset_note.setText(f"Not reset: {user_message(exc)}")
            self.reset_note.show()
            return False
        self.reset_note.setText("The router scores with its shipped weights again.")
        self.reset_note.show()
        return True

    def _fail(self, message: str) -> bool:
        self.error.setText(message)
        self.error.show()
        return False
