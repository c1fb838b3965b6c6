"""The secrets part of the settings: Hub token and the remote large tier's API key (keyring), and the local API
token (show, copy, regenerate)."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QWidget

from storage import secrets
from storage.errors import EmberError

log = logging.getLogger(__name__)

HUB_SECRET = "hf-token"
REMOTE_SECRET = "router-remote"  # the default of settings.router.remote_key


class SecretsPanel(QWidget):
    """Edits secrets; nothing here is written to ``settings.json``."""

    def __init__(self, home: Path, parent: QWidget | None = None, *, remote_secret: str = REMOTE_SECRET) -> None:
        super().__init__(parent)
        self._home = home
        self.keyring_ok = secrets.available()
        layout = QFormLayout(self)
        self.keyring_note = QLabel(
            "Secrets are stored in your system keyring." if self.keyring_ok else
            "No system keyring is available on this machine, so Ember cannot store secrets. Set the "
            f"environment variable {secrets.env_var(HUB_SECRET)} for the Hub token and "
            f"{secrets.env_var(remote_secret)} for the remote large tier's API key instead.")
        self.keyring_note.setWordWrap(True)
        self.keyring_note.setObjectName("hint")
        layout.addRow(self.keyring_note)
        self._initial: dict[str, str] = {}
        self.fields: dict[str, QLineEdit] = {}
        self.hub_token = self._secret_field(HUB_SECRET, "hf_… (for gated and private models)")
        layout.addRow("Hugging Face token", self.hub_token)
        self.remote_key = self._secret_field(remote_secret, "API key of the remote large tier (router)")
        layout.addRow("Remote large tier key", self.remote_key)
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

    def _secret_field(self, name: str, placeholder: str) -> QLineEdit:
        field = QLineEdit()
        field.setEchoMode(QLineEdit.EchoMode.Password)
        field.setPlaceholderText(placeholder)
        field.setEnabled(self.keyring_ok)
        try:
            self._initial[name] = secrets.get_secret(name) or ""
        except EmberError as exc:
            self._initial[name] = ""
            self.keyring_note.setText(str(exc))
        field.setText(self._initial[name])
        self.fields[name] = field
        return field

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
        """Replace the API token; a running local API requires the new one at once (``regenerate_token`` tells it),
        so programs using the old one must be given the new one."""
        from app.api.token import regenerate_token
        try:
            token = regenerate_token(self._home)
        except EmberError as exc:
            self.api_source.setText(str(exc))
            return
        self.api_token.setText(token.value)
        self.api_source.setText(f"New token kept in: {token.source}. The local API requires it from now on.")

    def save(self) -> None:
        """Store changed secrets (Hub token, remote key) in the keyring.

        Raises:
            SecretStoreError: no keyring, or it refused.
        """
        for name, field in self.fields.items():
            value = field.text().strip()
            if value == self._initial[name]:
                continue
            if value:
                secrets.set_secret(name, value)
            else:
                secrets.delete_secret(name)
            self._initial[name] = value
