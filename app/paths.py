"""Every path Ember reads or writes, decided in one place.

The data root is ``$EMBER_HOME`` when set (tests and second instances use it), otherwise the platform's user data
folder. Under it: ``ember.db`` (SQLite, WAL), ``settings.json``, ``models/`` (the library), ``cache/`` (saved KV
states) and ``logs/``. On POSIX the root and its folders are private (0700) and the database files 0600 (see
``storage.private``), so other local users cannot read the chats.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from storage.private import private_dir

APP_NAME = "ember"
HOME_ENV = "EMBER_HOME"


def default_home() -> Path:
    """The data root: ``$EMBER_HOME`` if set, else the platform's user data directory for Ember."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


@dataclass(frozen=True)
class Paths:
    """The files and folders under one data root."""

    home: Path

    @classmethod
    def from_env(cls) -> "Paths":
        """Paths under :func:`default_home`."""
        return cls(default_home())

    @property
    def database(self) -> Path:
        return self.home / "ember.db"

    @property
    def settings(self) -> Path:
        return self.home / "settings.json"

    @property
    def models(self) -> Path:
        return self.home / "models"

    @property
    def cache(self) -> Path:
        return self.home / "cache"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    def ensure(self) -> "Paths":
        """Create the data root and its folders if missing, private to this user (0700 on POSIX, whatever the
        umask); existing ones lose their group and other bits."""
        for folder in (self.home, self.models, self.cache, self.logs):
            private_dir(folder)
        return self
