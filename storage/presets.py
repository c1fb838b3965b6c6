"""System-prompt presets: named system prompts stored in SQLite, shared by the desktop and ``ember chat --preset``."""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils

from storage.conversations import now_iso
from storage.database import database_lock
from storage.errors import EmberError, NotFoundError

NAME_LENGTH = 80
PROMPT_LENGTH = 100_000  # the same bound as the chat.system_prompt setting


class PresetError(EmberError, ValueError):
    """A preset name or prompt that cannot be saved."""


@dataclass(frozen=True)
class Preset:
    """One named system prompt."""

    name: str
    prompt: str
    created: str
    updated: str


class PresetStore:
    """Reads and writes presets; safe to share between threads."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db
        self._lock = database_lock(db)

    def list(self) -> list[Preset]:
        """Every preset, by name (case-insensitive)."""
        with self._lock:
            rows = list(self._db["presets"].rows_where(order_by="name COLLATE NOCASE"))
        return [Preset(**row) for row in rows]

    def get(self, name: str) -> Preset:
        """The preset called ``name``.

        Raises:
            NotFoundError: no such preset (the message lists the ones there are).
        """
        with self._lock:
            rows = list(self._db["presets"].rows_where("name = ?", [name]))
        if not rows:
            known = ", ".join(p.name for p in self.list()) or "none yet"
            raise NotFoundError(f"There is no preset called {name!r} (presets: {known}). Save one in the desktop's "
                                "conversation settings or with `ember presets save NAME PROMPT`.")
        return Preset(**rows[0])

    def save(self, name: str, prompt: str, *, previous: str | None = None) -> Preset:
        """Create or overwrite the preset ``name``; ``previous`` renames that preset to ``name`` at the same time.

        Raises:
            PresetError: the name is empty or too long, the prompt too long, or the new name is taken by another
                preset.
            NotFoundError: ``previous`` does not exist.
        """
        name = " ".join(name.split())
        if not name:
            raise PresetError("A preset needs a name.")
        if len(name) > NAME_LENGTH:
            raise PresetError(f"A preset name can be at most {NAME_LENGTH} characters long.")
        if len(prompt) > PROMPT_LENGTH:
            raise PresetError(f"A preset's prompt can be at most {PROMPT_LENGTH} characters long.")
        stamp = now_iso()
        with self._lock, self._db.conn:
            existing = list(self._db["presets"].rows_where("name = ?", [name]))
            if previous is not None and previous != name:
                self.get(previous)
                if existing:
                    raise PresetError(f"There is already a preset called {name!r}; pick another name.")
                created = self.get(previous).created
                self._db.execute("DELETE FROM presets WHERE name = ?", [previous])
            else:
                created = existing[0]["created"] if existing else stamp
            self._db["presets"].upsert({"name": name, "prompt": prompt, "created": created, "updated": stamp},
                                       pk="name")
        return self.get(name)

    def delete(self, name: str) -> None:
        """Delete a preset (conversations that used its prompt keep their copy).

        Raises:
            NotFoundError: no such preset.
        """
        self.get(name)
        with self._lock, self._db.conn:
            self._db.execute("DELETE FROM presets WHERE name = ?", [name])
