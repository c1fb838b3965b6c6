"""The secrets part of the settings: Hub token (keyring) and the local API token (show, copy, regenerate)."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QWidget

from storage import secrets
from storage.errors import EmberError

log = logging.getLogger(__name__)

HUB_SECRET = "hf-token"


class SecretsPanel(QWidget):
    """Edits secrets; nothing here is written to ``settings.json``."""

    def __init__(self, home: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._home = home
        self.keyring_ok = secrets.available()
        layout = QFormLayout(self)
        self.keyring_note = QLabel(
            "Secrets are stored in your system keyring." if self.keyring_ok else
            "No system keyring is available on this machine, so Ember cannot store secrets. Set the "
            f"environment variable {secrets.env_var(HUB_SECRET)} for the Hub token instead.")
        self.keyring_note.setWordWrap(True)
        self.keyring_note.setObjectName("hint")
        layout.addRow(self.keyring_note)
        self.hub_token = QLineEdit()
        self.hub_token.setEchoMode(QLineEdit.EchoMode.Password)
        self.hub_token.setPlaceholderText("hf_… (for gated and private models)")
        self.hub_token.setEnabled(self.keyring_ok)
        try:
            self._hub_initial = secrets.get_secret(HUB_SECRET) or ""
        except EmberError as exc:
            self._hub_initial = ""
            self.keyring_note.setText(str(exc))
        self.hub_token.setText(self._hub_initial)
        layout.addRow("Hugging Face token", self.hub_token)
        self.api_token = QLineEdit()
        self.api_token.setReadOnly(True)
        self.api_token.setEchoMode(QLineEdit.EchoMode.Password)
        self.show_button = QPushButton("Show")
        self.show_button.setCheckable(True)
        self.copy_button = QPushButton("Copy")
        self.regenerate_button = QPushButton("Regenerate")
        row = QHBoxLayout()
        for w in (self.api_token, self.show_button, self.copy_button, self.regenerate_button):
            row.addWidget(w)
        self.api_source = QLabel()
        self.api_source.setObjectName("hint")
        layout.addRow("Local API token", row)
        layout.addRow("", self.api_source)
        self.show_button.toggled.connect(lambda on: self.api_token.setEchoMode(
            QLineEdit.EchoMode.Normal if on else QLineEdit.EchoMode.Password))
        self.copy_button.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.api_token.text()))
        self.regenerate_button.clicked.connect(self.regenerate_api_token)
        self._load_api_token()

    def _load_api_token(self) -> None:
        try:
            from app.api.token import load_token
            token = load_token(self._home)
        except ImportError:
            token = None
        except EmberError as exc:
            self.api_source.setText(str(exc))
            return
        for w in (self.copy_button, self.regenerate_button, self.show_button):
            w.setEnabled(token is not None)
        if token is not None:
            self.api_token.setText(token.value)
            self.api_source.setText(f"Kept in: {token.source}. Programs send it as 'Authorization: Bearer …'.")

    def regenerate_api_token(self) -> None:
        """Replace the API token (programs using the old one must be given the new one)."""
        from app.api.token import regenerate_token
        try:
            token = regenerate_token(self._home)
        except EmberError as exc:
            self.api_source.setText(str(exc))
            return
        self.api_token.setText(token.value)
        self.api_source.setText(f"New token kept in: {token.source}.")

    def save(self) -> None:
        """Store a changed Hub token in the keyring.

        Raises:
            SecretStoreError: no keyring, or it refused.
        """
        value = self.hub_token.text().strip()
        if value == self._hub_initial:
            return
        if value:
            secrets.set_secret(HUB_SECRET, value)
        else:
            secrets.delete_secret(HUB_SECRET)
        self._hub_initial = value
