"""The local API token: generated on first start, kept in the OS keyring or, without one, in a private file.

Order of lookup: the ``EMBER_SECRET_API_TOKEN`` environment variable, the OS keyring (service ``ember``, name
``api-token``), then the file ``api-token`` under the data root (mode 0600). A new token goes to the keyring when
one exists, else to that file. A running server follows :func:`regenerate_token` through
:func:`watch_regeneration`, so the settings panel's Regenerate button applies at once.
"""

from __future__ import annotations

import os
import secrets as pysecrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from storage import secrets
from storage.errors import StorageError

SECRET_NAME = "api-token"
TOKEN_FILE = "api-token"

_watchers: list[tuple[Path, Callable[["ApiToken"], None]]] = []
_watchers_lock = threading.Lock()


@dataclass(frozen=True)
class ApiToken:
    """The token and where it is kept (``environment``, ``keyring`` or a file path), for display."""

    value: str
    source: str


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return "ember-" + pysecrets.token_urlsafe(32)


def load_token(home: Path, *, create: bool = True) -> ApiToken | None:
    """The API token, created and stored on first use when ``create`` is true.

    Raises:
        SecretStoreError: the keyring exists but refused.
        StorageError: the fallback file cannot be read or written.
    """
    env = os.environ.get(secrets.env_var(SECRET_NAME))
    if env:
        return ApiToken(env, "environment")
    if secrets.available():
        value = secrets.get_secret(SECRET_NAME)
        if value:
            return ApiToken(value, "keyring")
    path = home / TOKEN_FILE
    try:
        if path.is_file():
            value = path.read_text(encoding="utf-8").strip()
            if value:
                return ApiToken(value, str(path))
    except OSError as exc:
        raise StorageError(f"The API token file {path} cannot be read ({exc}).") from exc
    return regenerate_token(home) if create else None


def watch_regeneration(home: Path, callback: Callable[[ApiToken], None]) -> Callable[[], None]:
    """Call ``callback`` with the new token each time :func:`regenerate_token` replaces the token of ``home`` in
    this process; returns the function that stops watching."""
    entry = (home.resolve(), callback)
    with _watchers_lock:
        _watchers.append(entry)

    def unwatch() -> None:
        with _watchers_lock:
            if entry in _watchers:
                _watchers.remove(entry)

    return unwatch


def regenerate_token(home: Path) -> ApiToken:
    """Make a new token and store it (the keyring when available, else the private file), replacing the old; the
    watchers of ``home`` (a running API server) get it at once.

    Raises:
        SecretStoreError: the keyring refused.
        StorageError: the fallback file cannot be written.
    """
    token = _store_new_token(home)
    target = home.resolve()
    with _watchers_lock:
        callbacks = [callback for where, callback in _watchers if where == target]
    for callback in callbacks:
        callback(token)
    return token


def _store_new_token(home: Path) -> ApiToken:
    """A new token, stored in the keyring when available, else in the private file."""
    value = new_token()
    if secrets.available():
        secrets.set_secret(SECRET_NAME, value)
        return ApiToken(value, "keyring")
    path = home / TOKEN_FILE
    try:
        home.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(value + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise StorageError(f"The API token could not be saved to {path} ({exc}).") from exc
    return ApiToken(value, str(path))
