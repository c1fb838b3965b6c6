"""The catalogue of local models in SQLite, and resolving a name, alias or path to a model file."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from models.errors import DiskSpaceError, ModelNotFoundError
from models.gguf import GGUFInfo, read_gguf
from models.quant import parse_quant, parse_shard
from models.starter import STARTER_ALIASES, STARTER_NAME, find_starter_file
from models.vocab import fingerprint
from storage.conversations import now_iso
from storage.database import database_lock


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
    vocab_fingerprint: str | None = None

    @property
    def files(self) -> list[Path]:
        """Every file of the model: the file itself, or all shards of a split model."""
        return shard_paths(self.path)


@dataclass(frozen=True)
class DeletePlan:
    """What removing a model would do, shown before it is done."""

    model: LibraryModel
    delete: tuple[Path, ...]  # files under the library folder that will be deleted
    keep: tuple[Path, ...]  # imported files outside the library folder: only un-catalogued
    freed: int  # bytes the deletion frees


class Library:
    """Reads and writes the ``models`` table; resolves names, aliases and paths."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db
        self._lock = database_lock(db)

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
            repo_id: str | None = None, sha256: str | None = None, filename: str | None = None) -> LibraryModel:
        """Catalogue a local GGUF file (its header is read and checked), replacing an entry of the same name.

        Args:
            path: the GGUF file, or the first shard of a split model (every shard is checked).
            name: the library name (default: made from the file name).
            aliases: other names that resolve to this model.
            repo_id, sha256, filename: where the file came from on the Hub (filename: the model's name there).

        Raises:
            ModelFileError: the file (or a shard) is not a complete GGUF file.
        """
        path = Path(path).resolve()
        info = read_gguf(path, load_arrays=True)
        files = shard_paths(path)
        for other in files[1:]:
            read_gguf(other)
        model = _from_info(name or default_name(path.name), path, info)
        row = {
            "name": model.name, "path": str(path), "size": sum(f.stat().st_size for f in files),
            "repo_id": repo_id, "filename": filename or path.name, "sha256": sha256,
            "quantization": model.quantization or parse_quant(filename or path.name),
            "architecture": model.architecture, "parameters": model.parameters,
            "context_length": model.context_length, "chat_template": int(model.chat_template),
            "vocab_fingerprint": fingerprint(info), "aliases": json.dumps(list(aliases)), "added": now_iso(),
        }
        with self._lock, self._db.conn:
            self._db["models"].upsert(row, pk="name")
        return self.get(model.name)

    def import_file(self, path: Path | str, *, name: str | None = None,
                    copy_into: Path | None = None) -> LibraryModel:
        """Catalogue a local GGUF file after checking it (magic, version, metadata, size against its tensors).

        Args:
            path: the file (or a split model's first shard).
            name: the library name (default: from the file name).
            copy_into: copy the file(s) into this folder first (the library folder); default: use it in place.

        Raises:
            ModelFileError: not a GGUF file, damaged or truncated (nothing is catalogued).
            DiskSpaceError: ``copy_into`` has too little free space.
        """
        path = Path(path).expanduser()
        read_gguf(path)  # refuse a bad file before copying anything
        if copy_into is not None:
            path = _copy_files(shard_paths(path.resolve()), copy_into)
        return self.add(path, name=name)

    def plan_delete(self, name: str, *, library_dir: Path) -> DeletePlan:
        """What removing ``name`` deletes and frees: files under ``library_dir`` are deleted, others kept.

        Raises:
            ModelNotFoundError: no such model.
        """
        model = self.get(name)
        root = library_dir.resolve()
        delete, keep = [], []
        for f in model.files:
            (delete if f.resolve().is_relative_to(root) else keep).append(f)
        freed = sum(f.stat().st_size for f in delete if f.exists())
        return DeletePlan(model=model, delete=tuple(delete), keep=tuple(keep), freed=freed)

    def delete(self, plan: DeletePlan) -> None:
        """Carry out a :meth:`plan_delete` plan: delete its files, then the catalogue entry."""
        for f in plan.delete:
            f.unlink(missing_ok=True)
        for folder in {f.parent for f in plan.delete}:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
        with self._lock, self._db.conn:
            self._db.execute("DELETE FROM models WHERE name = ?", [plan.model.name])

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
            if (rows and rows[0]["path"] == str(path.resolve()) and Path(rows[0]["path"]).is_file()
                    and rows[0].get("vocab_fingerprint")):
                return _model(rows[0])
            return self.add(path, name=STARTER_NAME, aliases=STARTER_ALIASES)


def default_name(filename: str) -> str:
    """The library name for a file: its slug, without a split model's ``-00001-of-00003`` suffix."""
    shard = parse_shard(Path(filename).name)
    return slug(Path(shard.group if shard else filename).stem)


def shard_paths(path: Path) -> list[Path]:
    """All files of the model whose (first) file is ``path``: the shards that exist beside it, in order."""
    shard = parse_shard(path.name)
    if shard is None:
        return [path]
    stem = shard.group[: -len(".gguf")]
    found = [path.parent / f"{stem}-{i:05d}-of-{shard.count:05d}.gguf" for i in range(1, shard.count + 1)]
    return [p for p in found if p.exists()] or [path]


def _copy_files(files: list[Path], folder: Path) -> Path:
    """Copy files into ``folder`` (each via a temporary name, renamed when complete); returns the first copy."""
    folder.mkdir(parents=True, exist_ok=True)
    need = sum(f.stat().st_size for f in files)
    free = shutil.disk_usage(folder).free
    if need > free:
        raise DiskSpaceError(f"Copying {files[0].name} into the library needs {need / (1 << 30):.1f} GiB and only "
                             f"{free / (1 << 30):.1f} GiB are free in {folder}. Free some space or import without "
                             "--copy to use the file where it is.")
    out = []
    for f in files:
        dest = folder / f.name
        tmp = folder / f".{f.name}.importing"
        try:
            shutil.copyfile(f, tmp)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        out.append(dest)
    return out[0]


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
        last_used=row["last_used"], vocab_fingerprint=row.get("vocab_fingerprint"),
    )
