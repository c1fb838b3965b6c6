"""The catalogue of local models in SQLite, and resolving a name, alias or path to a model file."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from models.errors import ModelNotFoundError
from models.gguf import GGUFInfo, read_gguf
from models.starter import STARTER_ALIASES, STARTER_NAME, find_starter_file
from storage.conversations import now_iso


@dataclass(frozen=True)
class LibraryModel:
    """A model file Ember knows, with what its GGUF header says."""

    name: str
    path: Path
    size: int
    quantization: str | None = None
    architecture: str | None = None
    parameters: int | None = None
    context_length: int | None = None
    chat_template: bool = False
    repo_id: str | None = None
    filename: str | None = None
    sha256: str | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)
    added: str | None = None
    last_used: str | None = None


class Library:
    """Reads and writes the ``models`` table; resolves names, aliases and paths."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db
        self._lock = threading.RLock()

    def list(self) -> list[LibraryModel]:
        """All catalogued models, by name."""
        with self._lock:
            return [_model(r) for r in self._db["models"].rows_where(order_by="name")]

    def get(self, name: str) -> LibraryModel:
        """The model with this name or alias.

        Raises:
            ModelNotFoundError: no such model in the library.
        """
        with self._lock:
            rows = list(self._db["models"].rows_where("name = ?", [name]))
            if not rows:
                rows = [r for r in self._db["models"].rows if name in json.loads(r["aliases"] or "[]")]
        if not rows:
            known = ", ".join(m.name for m in self.list()) or "none"
            raise ModelNotFoundError(
                f"No model named {name!r} in the library (installed: {known}). "
                "Give a library name, an alias or the path of a .gguf file."
            )
        return _model(rows[0])

    def resolve(self, name_or_path: str) -> LibraryModel:
        """A library model by name or alias, or a GGUF file by path (checked, not catalogued).

        Raises:
            ModelNotFoundError: neither a library name nor a file path.
            ModelFileError: the path is not a usable GGUF file.
        """
        looks_like_path = name_or_path.endswith(".gguf") or "/" in name_or_path or "\\" in name_or_path
        if looks_like_path or Path(name_or_path).is_file():
            path = Path(name_or_path).expanduser()
            info = read_gguf(path)
            return _from_info(path.stem, path, info)
        return self.get(name_or_path)

    def add(self, path: Path | str, *, name: str | None = None, aliases: tuple[str, ...] = (),
            repo_id: str | None = None, sha256: str | None = None) -> LibraryModel:
        """Catalogue a local GGUF file (its header is read and checked), replacing an entry of the same name.

        Raises:
            ModelFileError: the file is not a complete GGUF file.
        """
        path = Path(path).resolve()
        info = read_gguf(path)
        model = _from_info(name or slug(path.stem), path, info)
        row = {
            "name": model.name, "path": str(path), "size": model.size, "repo_id": repo_id,
            "filename": path.name, "sha256": sha256, "quantization": model.quantization,
            "architecture": model.architecture, "parameters": model.parameters,
            "context_length": model.context_length, "chat_template": int(model.chat_template),
            "aliases": json.dumps(list(aliases)), "added": now_iso(),
        }
        with self._lock, self._db.conn:
            self._db["models"].upsert(row, pk="name")
        return self.get(model.name)

    def touch(self, name: str) -> None:
        """Record that a model was just used."""
        with self._lock, self._db.conn:
            self._db.execute("UPDATE models SET last_used = ? WHERE name = ?", [now_iso(), name])

    def ensure_starter(self) -> LibraryModel | None:
        """Catalogue the bundled starter model if it is installed and not yet (or no longer correctly) listed."""
        path = find_starter_file()
        if path is None:
            return None
        with self._lock:
            rows = list(self._db["models"].rows_where("name = ?", [STARTER_NAME]))
            if rows and rows[0]["path"] == str(path.resolve()) and Path(rows[0]["path"]).is_file():
                return _model(rows[0])
            return self.add(path, name=STARTER_NAME, aliases=STARTER_ALIASES)


def slug(text: str) -> str:
    """A library name made from a file name: lower case, dashes, no extension."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "model"


def _from_info(name: str, path: Path, info: GGUFInfo) -> LibraryModel:
    return LibraryModel(
        name=name, path=path, size=path.stat().st_size, quantization=info.quantization,
        architecture=info.architecture, parameters=info.parameter_count or None,
        context_length=info.context_length, chat_template=bool(info.chat_template),
    )


def _model(row: dict[str, Any]) -> LibraryModel:
    return LibraryModel(
        name=row["name"], path=Path(row["path"]), size=row["size"], quantization=row["quantization"],
        architecture=row["architecture"], parameters=row["parameters"], context_length=row["context_length"],
        chat_template=bool(row["chat_template"]), repo_id=row["repo_id"], filename=row["filename"],
        sha256=row["sha256"], aliases=tuple(json.loads(row["aliases"] or "[]")), added=row["added"],
        last_used=row["last_used"],
    )
